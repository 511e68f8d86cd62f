"""Signing in and out, and the first page after: a shop device goes to its scanner, staff
see who they are signed in as and the roles their grants give them.

A refused sign-in says why in plain words: wrong username or password (the
two are not told apart, and how many tries are left), or locked until when.
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for

from ledger.organisation import get_unit, list_grants
from ledger.programmes import get_programme
from web import accounts, sessions
from web.formats import local_time
from web.sessions import engine

blueprint = Blueprint("home", __name__)

MAX_FIELD_CHARS = 200


@blueprint.get("/")
def home():
    signed_in = g.get("signed_in")
    if signed_in is None:
        return redirect(url_for(".sign_in_form"))
    if signed_in.account.kind == accounts.SHOP:
        return redirect(url_for("pages.shop.scan"))
    account = signed_in.account
    grants = [(grant.role, get_unit(engine(), account.programme, grant.unit).name)
              for grant in list_grants(engine(), account.programme, principal=account.principal)]
    return render_template("home.html", account=account, grants=grants,
                           programme=get_programme(engine(), account.programme))


@blueprint.get("/sign-in")
def sign_in_form():
    if g.get("signed_in") is not None:
        return redirect(_next_page())
    return render_template("sign_in.html", next_page=_next_page(), username="")


@blueprint.post("/sign-in")
def sign_in():
    username = request.form.get("username", "")[:MAX_FIELD_CHARS]
    password = request.form.get("password", "")[:MAX_FIELD_CHARS + 1]
    try:
        new_session = accounts.sign_in(engine(), username, password)
    except accounts.AccountLocked as refusal:
        g.refusal_code = refusal.code
        programme_zone = _zone_of(refusal.details["username"])
        return render_template(
            "sign_in.html", next_page=_next_page(), username=username, refusal="locked",
            locked_until=local_time(refusal.details["locked_until"], programme_zone)), 429
    except (accounts.BadCredentials, accounts.AccountDisabled) as refusal:
        g.refusal_code = refusal.code
        return render_template("sign_in.html", next_page=_next_page(), username=username,
                               refusal=refusal.code,
                               attempts_left=refusal.details.get("attempts_left")), 401
    if g.get("signed_in") is not None:  # a second sign-in in one browser replaces the first
        accounts.end_session(engine(), g.signed_in.session_id)
    return sessions.start(redirect(_next_page(), code=303), new_session)


@blueprint.post("/sign-out")
def sign_out():
    return sessions.end(redirect(url_for(".sign_in_form", signed_out=1), code=303))


@blueprint.get("/sign-out")
def sign_out_address():
    """Signing out takes the form's POST (with its CSRF token); a typed address goes home."""
    return redirect(url_for(".home"))


def _next_page() -> str:
    """Where to go after signing in: `next` if it is a path on this site, else home."""
    wanted = (request.form.get("next") or request.args.get("next") or "").rstrip("?")
    if wanted.startswith("/") and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return url_for(".home")


def _zone_of(username: str):
    return get_programme(engine(), accounts.get_account(engine(), username).programme).zone
