"""The shop scanner: a shop's device checks a voucher, redeems it once, and reads its money.

A device signs in once as a `shop` account (its session lasts months,
web/accounts.py) and acts for that shop only, as the shop's API key does.
A voucher reaches the page three ways, all checked by the same
`redemption.redemptions.check` as the API's:

- scanned live, where the browser has `BarcodeDetector` (web/static/scan.js
  posts the QR code's text as `token`);
- a photo of the QR code, decoded here with zxing-cpp (web/photos.py), for
  browsers without it;
- the short code, typed.

The answer is one card: genuine and unused (what it is worth, what for,
until when) with a Redeem button, or why it cannot be used, in plain words.
Redeem calls `redemptions.redeem` with an idempotency key made when the card
was shown, so a double tap, a retry or a reload redeems once and shows the
same result; a second device is told the voucher is already redeemed, when
and where. Typed short codes that name no voucher count against the account
as against an API key (`api.routes.redemptions.ShortCodeGuesses`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from api.routes.redemptions import MAX_SHORT_CODE_CHARS
from ledger import errors
from ledger.programmes import ProgrammeInfo, get_programme
from redemption import catalog, redemptions, settlement, tokens
from redemption.errors import RedemptionError, UnknownItem, UnknownShop, UnknownVoucher
from redemption.settings import get_settings
from redemption.shops import ShopInfo, get_shop
from web import photos
from web.accounts import SHOP
from web.formats import last_valid_day, local_time
from web.sessions import engine, signed_in

blueprint = Blueprint("shop", __name__, url_prefix="/shop")

ATTEMPT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
ATTEMPT_KEY_PREFIX = "page:"
MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
NOT_GENUINE = ("forged", "unknown_signing_key", "wrong_programme")


@dataclass(frozen=True)
class Card:
    """What the page says about one voucher: `state` is `valid`, a refusal code of
    `redemption.redemptions`, or what went wrong before a voucher was read
    (`mistyped`, `empty`, `too_many_guesses`, and `photos.PhotoError` reasons)."""

    state: str
    value_points: int | None = None
    money_fen: int | None = None
    item_name: str | None = None
    goods: bool = False
    valid_through: str | None = None
    expires_at: str | None = None
    voucher: str | None = None
    """What Redeem sends back: the token or the code, as read."""
    attempt: str | None = None
    redeemed_at: str | None = None
    redeemed_shop: str | None = None
    redeemed_here: bool = False
    valid_at: list[str] = field(default_factory=list)
    wait_minutes: int | None = None


@blueprint.url_value_preprocessor
def accept_photos(endpoint: str | None, _values: dict | None) -> None:
    """A phone's photo may be larger than the API's body limit: allow it on the check.

    Set here because URL value preprocessors run before any `before_request`
    hook, and the app's own hooks read the body.
    """
    if endpoint == "pages.shop.check":
        request.max_content_length = max(current_app.config.get("MAX_CONTENT_LENGTH") or 0,
                                         photos.MAX_PHOTO_BYTES)


@blueprint.get("")
@signed_in(SHOP)
def scan():
    return _scan_page(None)


@blueprint.post("/check")
@signed_in(SHOP)
def check():
    """Check what was scanned, photographed or typed; write nothing."""
    shop, programme = _shop()
    photo = request.files.get("photo")
    typed = request.form.get("code", "").strip()[:MAX_SHORT_CODE_CHARS]
    if photo is not None and photo.filename:
        try:
            text = photos.read_qr_codes(photo.read())[0]
        except photos.PhotoError as error:
            return _scan_page(Card(error.reason), status=422)
    elif request.form.get("token"):
        text = request.form["token"].strip()[:tokens.MAX_TOKEN_CHARS]
    elif typed:
        text = typed
    else:
        return _scan_page(Card("empty"), status=422)
    is_typed = text == typed
    if is_typed and (wait := _too_many_guesses()):
        return _scan_page(wait, status=429)
    result = redemptions.check(engine(), programme.code, shop.code, text)
    if is_typed and result.refusal == UnknownVoucher.code:
        _guesses().count(g.caller)
    if not result.valid:
        return _scan_page(_refusal_card(result.refusal, result.details, programme, is_typed),
                          status=422)
    return _scan_page(_valid_card(result, text, programme))


@blueprint.post("/redeem")
@signed_in(SHOP)
def redeem():
    """Redeem the voucher on the card, once, whatever the number of taps."""
    shop, programme = _shop()
    voucher = request.form.get("voucher", "").strip()[:tokens.MAX_TOKEN_CHARS]
    attempt = request.form.get("attempt", "")
    if not voucher or not ATTEMPT_PATTERN.match(attempt):
        abort(400)
    is_typed = "." not in voucher
    if is_typed and (wait := _too_many_guesses()):
        return _scan_page(wait, status=429)
    try:
        redemption = redemptions.redeem(engine(), programme.code, shop.code, voucher,
                                        actor=g.caller.actor,
                                        idempotency_key=ATTEMPT_KEY_PREFIX + attempt)
    except RedemptionError as refusal:
        if is_typed and isinstance(refusal, UnknownVoucher):
            _guesses().count(g.caller)
        if isinstance(refusal, UnknownShop):
            raise
        return _scan_page(_refusal_card(refusal.code, refusal.details, programme, is_typed),
                          status=409)
    return redirect(url_for(".redeemed", voucher_id=redemption.voucher_id), code=303)


@blueprint.get("/check")
@blueprint.get("/redeem")
def back_to_the_scanner():
    """The address of a form answer, reloaded or typed: the scanner, not an error."""
    return redirect(url_for(".scan"))


@blueprint.get("/redeemed/<voucher_id>")
@signed_in(SHOP)
def redeemed(voucher_id: str):
    shop, programme = _shop()
    try:
        redemption = redemptions.get_redemption(engine(), programme.code, voucher_id)
    except UnknownVoucher:
        abort(404)
    if redemption.shop != shop.code:
        abort(404)
    value = _value(programme, redemption.value_points, redemption.item)
    return render_template("shop/redeemed.html", shop=shop, programme=programme,
                           redemption=redemption, value=value,
                           redeemed_at=local_time(redemption.redeemed_at, programme.zone))


@blueprint.get("/today")
@signed_in(SHOP)
def today():
    shop, programme = _shop()
    day = datetime.now(UTC).astimezone(programme.zone).date()
    found = settlement.statement(engine(), programme.code, shop.code, day, day)
    return render_template("shop/today.html", shop=shop, programme=programme, day=day,
                           statement=found, item_names=_item_names(programme, found))


@blueprint.get("/statement")
@signed_in(SHOP)
def statement():
    shop, programme = _shop()
    first, last = _month(programme)
    found = settlement.statement(engine(), programme.code, shop.code, first, last)
    previous_month = (first - timedelta(days=1)).strftime("%Y-%m")
    next_month = (last + timedelta(days=1)).strftime("%Y-%m")
    this_month = datetime.now(UTC).astimezone(programme.zone).strftime("%Y-%m")
    settlements = [(info, local_time(info.settled_at, programme.zone))
                   for info in found.settlements]
    return render_template("shop/statement.html", shop=shop, programme=programme,
                           month=first.strftime("%Y-%m"), statement=found,
                           settlements=settlements, previous_month=previous_month,
                           next_month=next_month if next_month <= this_month else None,
                           item_names=_item_names(programme, found))


@blueprint.get("/statement.csv")
@signed_in(SHOP)
def statement_csv():
    """The month's statement as CSV (UTF-8 with BOM, for Excel), as the API gives it."""
    shop, programme = _shop()
    first, last = _month(programme)
    found = settlement.statement(engine(), programme.code, shop.code, first, last)
    filename = f"{shop.code}-{first.strftime('%Y-%m')}.csv"
    return Response(settlement.statement_csv(found), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _shop() -> tuple[ShopInfo, ProgrammeInfo]:
    account = g.signed_in.account
    return (get_shop(engine(), account.programme, account.principal),
            get_programme(engine(), account.programme))


def _scan_page(card: Card | None, status: int = 200):
    shop, programme = _shop()
    return render_template("shop/scan.html", shop=shop, programme=programme, card=card), status


def _valid_card(result: redemptions.CheckResult, text: str, programme: ProgrammeInfo) -> Card:
    value = _value(programme, result.value_points, result.item)
    return Card("valid", value_points=result.value_points, money_fen=value.money_fen,
                item_name=value.item_name, goods=value.goods,
                valid_through=last_valid_day(result.expires_at, programme.zone),
                expires_at=local_time(result.expires_at, programme.zone), voucher=text,
                attempt=secrets.token_urlsafe(16))


def _refusal_card(code: str, details: dict, programme: ProgrammeInfo, typed: bool) -> Card:
    if code == "forged" and typed:
        return Card("mistyped")
    if code == "already_redeemed":
        here = details.get("shop") == g.signed_in.account.principal
        return Card(code, redeemed_at=local_time(details["redeemed_at"], programme.zone),
                    redeemed_shop=_shop_name(programme, details["shop"]), redeemed_here=here)
    if code == "expired" and details.get("expires_at"):
        return Card(code, expires_at=local_time(details["expires_at"], programme.zone))
    if code == "wrong_shop":
        return Card(code, valid_at=[_shop_name(programme, shop)
                                    for shop in details.get("valid_at", [])])
    return Card(code)


def _too_many_guesses() -> Card | None:
    wait_seconds = _guesses().wait_seconds(g.caller)
    if not wait_seconds:
        return None
    g.refusal_code = "too_many_guesses"
    return Card("too_many_guesses", wait_minutes=max(1, -(-wait_seconds // 60)))


def _guesses():
    return current_app.extensions["jifen.pages"].short_code_guesses


@dataclass(frozen=True)
class Value:
    money_fen: int | None
    """What to take off the bill: a cash-off item's value, or points at the programme's
    rate; None for goods (hand the goods over)."""
    item_name: str | None
    goods: bool


def _value(programme: ProgrammeInfo, points: int, item_code: str | None) -> Value:
    if item_code is None:
        rate = get_settings(engine(), programme.code).fen_per_point
        return Value(points * rate, None, False)
    try:
        item = catalog.get_item(engine(), programme.code, item_code)
    except UnknownItem:
        return Value(None, item_code, True)
    if item.kind == catalog.CASH_OFF:
        return Value(item.value_fen, item.name, False)
    return Value(None, item.name, True)


def _shop_name(programme: ProgrammeInfo, code: str) -> str:
    try:
        return get_shop(engine(), programme.code, code).name
    except UnknownShop:
        return code


def _item_names(programme: ProgrammeInfo, found: settlement.Statement) -> dict[str, str]:
    names = {}
    for code in {line.item for line in found.lines if line.item}:
        try:
            names[code] = catalog.get_item(engine(), programme.code, code).name
        except UnknownItem:
            names[code] = code
    return names


def _month(programme: ProgrammeInfo) -> tuple[date, date]:
    """The first and last day of `?month=YYYY-MM` (default: this month, programme time)."""
    asked = MONTH_PATTERN.match(request.args.get("month", ""))
    if asked:
        try:
            first = date(int(asked.group(1)), int(asked.group(2)), 1)
        except ValueError:
            raise errors.InvalidEntry("no such month", field="month") from None
    else:
        first = datetime.now(UTC).astimezone(programme.zone).date().replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last

