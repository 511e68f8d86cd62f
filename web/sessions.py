"""Who is signed in, CSRF on every form, and the headers and cookies of every page.

`load` runs before each page request: it finds the session from the
`jifen_session` cookie (web/accounts.py keeps sessions in the database, so
every gunicorn worker agrees and signing out ends a session at once), and
refuses a POST whose `csrf_token` field is not the expected token:

- signed in, the session's own token (kept server-side with the session);
- not yet signed in (the sign-in form), a random token in the `jifen_csrf`
  cookie that the form must repeat (double submit).

A signed-in account acts through `api.auth` exactly as an API key of its
kind and principal would: `g.caller` is set, so `require_staff`,
`require_unit_role` and the rest decide for pages what they decide for the
API. (The caller's `key_id` is the account's id; pages never use the API's
per-key stores, idempotency records, so the two cannot be confused.)

A resident's wallet (web/residents.py) is held open the same way, by the
`jifen_wallet` cookie, with the session's own CSRF token; it acts as the
member's own API key would. A browser with both a staff session and a
wallet has one CSRF token for its forms: the staff session's.

`finish` runs after each page: no caching (pages carry CSRF tokens and
vouchers), a Content-Security-Policy that allows only the app's own scripts
and styles, and the cookies set by this request.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, redirect, request, url_for

from api.auth import Caller
from ledger.keys import KeyHolder
from web import accounts, i18n, residents

SESSION_COOKIE = "jifen_session"
CSRF_COOKIE = "jifen_csrf"
WALLET_COOKIE = "jifen_wallet"
CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class CsrfRefused(Exception):
    """A POST without the form's CSRF token (or with a wrong one): nothing was done."""


def engine():
    return current_app.extensions["jifen"].engine


def load() -> None:
    if request.endpoint == "pages.static":
        return
    current_app.extensions["jifen.pages"].catalogs.as_default()
    g.signed_in = accounts.find_session(engine(), request.cookies.get(SESSION_COOKIE))
    g.resident = residents.find_session(engine(), request.cookies.get(WALLET_COOKIE))
    if g.signed_in is not None:
        account = g.signed_in.account
        g.caller = Caller(KeyHolder(account.id, "", account.kind, account.principal,
                                    account.programme, account.username))
    elif g.resident is not None:
        g.caller = g.resident.caller()
    if request.method == "POST":
        expected = _session_csrf_token() or request.cookies.get(CSRF_COOKIE)
        sent = request.form.get(CSRF_FIELD, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise CsrfRefused()


def csrf_token() -> str:
    """The token this page's forms carry (templates: `{{ csrf_field() }}`)."""
    session_token = _session_csrf_token()
    if session_token is not None:
        return session_token
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > accounts.MAX_TOKEN_CHARS:
        token = g.get("new_csrf_cookie") or secrets.token_urlsafe(32)
        g.new_csrf_cookie = token
    return token


def _session_csrf_token() -> str | None:
    """The staff session's token, else the open wallet's; None with neither."""
    for session in (g.get("signed_in"), g.get("resident")):
        if session is not None:
            return session.csrf_token
    return None


def finish(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(self)"
    if g.get("new_csrf_cookie"):
        _set_cookie(response, CSRF_COOKIE, g.new_csrf_cookie, samesite="Strict")
    signed_in = g.get("signed_in")
    if signed_in is not None and signed_in.renewed and not g.get("signed_out"):
        _set_cookie(response, SESSION_COOKIE, request.cookies[SESSION_COOKIE],
                    max_age=accounts.session_seconds(signed_in.account.kind))
    resident = g.get("resident")
    if resident is not None and resident.renewed and not g.get("left_wallet"):
        _set_cookie(response, WALLET_COOKIE, request.cookies[WALLET_COOKIE],
                    max_age=residents.session_seconds())
    language = i18n.requested_language()
    if language is not None:
        _set_cookie(response, i18n.LANGUAGE_COOKIE, language,
                    max_age=i18n.LANGUAGE_COOKIE_SECONDS)
    return response


def start(response: Response, new_session: accounts.NewSession) -> Response:
    """Give the browser the new session's cookie."""
    _set_cookie(response, SESSION_COOKIE, new_session.token,
                max_age=accounts.session_seconds(new_session.signed_in.account.kind))
    return response


def end(response: Response) -> Response:
    """Sign out: end the session in the database and drop the cookie."""
    if g.get("signed_in") is not None:
        accounts.end_session(engine(), g.signed_in.session_id)
    g.signed_out = True
    response.delete_cookie(SESSION_COOKIE, path="/", secure=request.is_secure, httponly=True,
                           samesite="Lax")
    return response


def signed_in(kind: str) -> Callable:
    """A view for accounts of `kind` only: others are sent to sign in, or refused."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            if g.get("signed_in") is None:
                wanted = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("pages.home.sign_in_form", next=wanted))
            if g.signed_in.account.kind != kind:
                raise WrongKindOfAccount(kind)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def open_wallet(response: Response, new_session: residents.NewWalletSession) -> Response:
    """Give the browser the new wallet session's cookie."""
    _set_cookie(response, WALLET_COOKIE, new_session.token,
                max_age=residents.session_seconds())
    return response


def leave_wallet(response: Response) -> Response:
    """End the wallet session in the database and drop its cookie."""
    if g.get("resident") is not None:
        residents.end_session(engine(), g.resident.session_id)
    g.left_wallet = True
    response.delete_cookie(WALLET_COOKIE, path="/", secure=request.is_secure, httponly=True,
                           samesite="Lax")
    return response


class WrongKindOfAccount(Exception):
    """A page for shop devices opened by staff, or the other way round."""

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None,
                samesite: str = "Lax") -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=request.is_secure,
                        httponly=True, samesite=samesite)
