"""The pages' blueprint, installed on the API's app by `api.app.create_app`.

Every page hangs under the `pages` blueprint, so the session, the CSRF
check, the language and the security headers (web/sessions.py) apply to all
of them, and a refusal raised by any page becomes a page here, in plain
words, never a code or a JSON body. Templates and static files are the
package's own (web/templates, web/static, served at /assets); nothing comes
from a CDN and nothing is built.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from api.problems import STATUS_BY_CODE, ApiProblem
from api.routes.redemptions import ShortCodeGuesses
from ledger import errors
from redemption import codes
from web import i18n, sessions
from web.formats import yuan
from web.routes.boards import blueprint as boards
from web.routes.cards import blueprint as cards
from web.routes.desk import blueprint as desk
from web.routes.desk_awards import blueprint as desk_awards
from web.routes.desk_claims import blueprint as desk_claims
from web.routes.desk_entries import blueprint as desk_entries
from web.routes.desk_sheets import blueprint as desk_sheets
from web.routes.home import blueprint as home
from web.routes.shop import blueprint as shop
from web.routes.wallet import blueprint as wallet

log = logging.getLogger("web")

STATIC = Path(__file__).resolve().parent / "static"
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
"""Each language by its own name (an endonym), the same whichever language the page is in."""

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/assets")
pages.register_blueprint(home)
pages.register_blueprint(shop)
for resident_part in (wallet, cards, boards):
    pages.register_blueprint(resident_part)
for desk_part in (desk, desk_awards, desk_claims, desk_entries, desk_sheets):
    pages.register_blueprint(desk_part)
pages.before_request(sessions.load)


@dataclass
class PagesExtension:
    """What pages reach through `current_app.extensions["jifen.pages"]`."""

    catalogs: i18n.CompiledCatalogs
    short_code_guesses: ShortCodeGuesses
    """Typed short codes naming no voucher, per shop account (as the API counts per key)."""
    asset_version: str
    """A digest of web/static: asset URLs change when a file does, so phones may cache them."""


def install(app: Flask) -> None:
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC).as_posix().encode() + path.read_bytes())
    app.extensions["jifen.pages"] = PagesExtension(i18n.install(app), ShortCodeGuesses(),
                                                   digest.hexdigest()[:12])
    app.register_blueprint(pages)


@pages.after_request
def finish(response):
    if request.endpoint == "pages.static":
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
    return sessions.finish(response)


@pages.context_processor
def helpers() -> dict:
    language = i18n.chosen_language()
    return {"csrf_field": csrf_field, "asset": asset, "language_links": language_links,
            "signed_in": g.get("signed_in"), "html_lang": language.replace("_", "-")}


@pages.app_template_filter("yuan")
def yuan_filter(fen: int) -> str:
    return yuan(fen)


@pages.app_template_filter("short_code")
def short_code_filter(code: str) -> str:
    return codes.display(code)


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        sessions.CSRF_FIELD, sessions.csrf_token())


def asset(filename: str) -> str:
    return url_for("pages.static", filename=filename,
                   v=current_app.extensions["jifen.pages"].asset_version)


def language_links() -> list[tuple[str, str]]:
    """(name, URL) of each language this page is not in: this page again in that language.

    A page answering a form (a POST) has no address to reload, so its link
    goes to the area's first page instead.
    """
    current = i18n.chosen_language()
    path = request.path if request.method == "GET" else _first_page()
    arguments = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return [(LANGUAGE_NAMES[language], f"{path}?{urlencode([*arguments, ('lang', language)])}")
            for language in i18n.LANGUAGES if language != current]


def _first_page() -> str:
    if request.blueprint == "pages.shop":
        return url_for("pages.shop.scan")
    if request.blueprint == "pages.wallet":
        return url_for("pages.wallet.home" if g.get("resident") else "pages.wallet.open_form")
    if request.blueprint == "pages.cards":
        return url_for("pages.cards.card_form", **(request.view_args or {}))
    if request.blueprint and request.blueprint.startswith("pages.desk"):
        return url_for("pages.desk.home")
    return url_for("pages.home.home")


@pages.errorhandler(sessions.CsrfRefused)
def csrf_refused(_error):
    return _refusal_page("csrf", 400)


@pages.errorhandler(sessions.WrongKindOfAccount)
def wrong_kind_of_account(error):
    return _refusal_page("shop_only" if error.needed == "shop" else "staff_only", 403)


@pages.errorhandler(ApiProblem)
def api_refusal(error: ApiProblem):
    g.refusal_code = error.code
    return _refusal_page(error.code, STATUS_BY_CODE.get(error.code, 400), detail=error.detail)


@pages.errorhandler(errors.LedgerError)
def ledger_refusal(error: errors.LedgerError):
    """A refusal a page did not turn into words of its own: the status the API would give."""
    g.refusal_code = error.code
    return _refusal_page(error.code, STATUS_BY_CODE.get(error.code, 400), detail=error.message)


@pages.errorhandler(HTTPException)
def http_error(error: HTTPException):
    code = {404: "not_found", 405: "not_found", 413: "too_large"}.get(error.code, "bad_request")
    return _refusal_page(code, error.code or 400)


@pages.errorhandler(Exception)
def unexpected(error: Exception):
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    return _refusal_page("internal_error", 500)


def _refusal_page(code: str, status: int, detail: str | None = None):
    return render_template("refusal.html", code=code, detail=detail,
                           request_id=g.get("request_id")), status
