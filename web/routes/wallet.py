"""The resident's wallet: their points, their history, their vouchers, and the catalog.

A resident opens it with the code on their points card (web/residents.py):
the card's QR code holds `/w#<code>`, and this page's form sends the code
(pages.js moves it from the address into the form), or the resident types
it. The wallet then stays open on that phone for weeks, until the resident
leaves it or the card is replaced.

Every wallet page acts as the member's own API key would (`g.caller` is the
member principal) and reads only that member's data: the member comes from
the session, never from the address, and a voucher or an entry of anyone
else is "not found". Turning points into a voucher goes through
`redemption.vouchers.issue_voucher` with an idempotency key made when the
catalog was shown, so a double tap or a reload makes one voucher; the QR
code is drawn into the page (web/qrcodes.py), large enough to scan off the
screen. Each entry's inclusion proof downloads as the `tlog-proof` file the
API serves (`audit.proofs.proof_file`), once a checkpoint covers it.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from markupsafe import Markup

from api.auth import require_member_access
from audit import proofs
from audit.checkpoints import NoCheckpoint, latest_signed
from audit.proof_file import FILE_SUFFIX
from ledger import errors
from ledger.accounts import member_account
from ledger.chain import MAX_POINTS, get_entry
from ledger.organisation import SYSTEM_PREFIX
from ledger.programmes import CODE_PATTERN, ProgrammeInfo, get_programme
from ledger.rules import rule_versions
from ledger.statements import StatementLine, balance_of, statement
from redemption import catalog, redemptions, vouchers
from redemption.errors import RedemptionError, UnknownItem, UnknownVoucher
from redemption.settings import get_settings
from redemption.shops import ACTIVE, list_shops
from web import accounts, residents, sessions
from web.formats import last_valid_day, local_time
from web.qrcodes import qr_svg
from web.sessions import engine

blueprint = Blueprint("wallet", __name__)

HISTORY_PAGE_ENTRIES = 20
RECENT_ENTRIES = 3
MAX_VOUCHERS_SHOWN = 50
ATTEMPT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
ATTEMPT_KEY_PREFIX = "wallet:"
MAX_CODE_CHARS = 60
MAX_SEQ = 2**63 - 1
PROOF_MIMETYPE = "text/plain"


def wallet_open(view: Callable) -> Callable:
    """A page of an open wallet: without one, the resident is asked for their card's code.

    The wallet's own member principal is the caller here, also in a browser
    where staff are signed in as well.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        if g.get("resident") is None:
            return redirect(url_for(".open_form"))
        g.caller = g.resident.caller()
        return view(*args, **kwargs)

    return wrapper


# -- opening and leaving ------------------------------------------------------------------


@blueprint.get("/w")
def open_form():
    return _open_page(None)


@blueprint.post("/w")
def open_with_code():
    """Open the wallet of the card whose code was sent (by the card's link, or typed)."""
    code = request.form.get("code", "")[:MAX_CODE_CHARS]
    try:
        new_session = residents.open_wallet(engine(), code)
    except residents.UnknownCode as refusal:
        g.refusal_code = refusal.code
        return _open_page(refusal.code), 404
    if g.get("resident") is not None:  # another card opened on this phone replaces the first
        residents.end_session(engine(), g.resident.session_id)
    return sessions.open_wallet(redirect(url_for(".home"), code=303), new_session)


@blueprint.post("/wallet/leave")
def leave():
    return sessions.leave_wallet(redirect(url_for(".open_form", left=1), code=303))


@blueprint.get("/wallet/leave")
def leave_address():
    """Leaving takes the form's POST (with its CSRF token); a typed address goes home."""
    return redirect(url_for(".home"))


# -- the wallet ---------------------------------------------------------------------------


@blueprint.get("/wallet")
@wallet_open
def home():
    programme, member = _programme_and_member()
    figures = balance_of(engine(), programme.code, member_account(member))
    issued = vouchers.list_vouchers(engine(), programme.code, member=member,
                                    status=vouchers.ISSUED, limit=MAX_VOUCHERS_SHOWN)
    page = statement(engine(), programme.code, member_account(member), limit=RECENT_ENTRIES)
    return _render("wallet/home.html", "home", programme, balance=figures.balance_points,
                   score=figures.score_points, issued=len(issued),
                   lines=_history_lines(programme, member, page.lines))


@blueprint.get("/wallet/history")
@wallet_open
def history():
    programme, member = _programme_and_member()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_SEQ:
        abort(404)
    page = statement(engine(), programme.code, member_account(member), before_seq=before,
                     limit=HISTORY_PAGE_ENTRIES)
    return _render("wallet/history.html", "history", programme,
                   lines=_history_lines(programme, member, page.lines),
                   older=page.next_before_seq, first_page=before is None)


@blueprint.get(f"/wallet/entries/<int(max={MAX_SEQ}):seq>/proof")
@wallet_open
def proof(seq: int):
    """The entry's `c2sp.org/tlog-proof@v1` file, for an entry posting to the resident's own
    account only (as for a member key); anyone else's is not found."""
    programme, member = _programme_and_member()
    try:
        entry = get_entry(engine(), programme.code, seq)
    except errors.UnknownEntry:
        abort(404)
    if all(posting.account != member_account(member) for posting in entry.postings):
        abort(404)
    try:
        text = proofs.proof_file(engine(), programme.code, seq)
    except NoCheckpoint:
        g.refusal_code = NoCheckpoint.code
        return _render("wallet/proof_pending.html", "history", programme, seq=seq), 409
    response = Response(text, mimetype=PROOF_MIMETYPE)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{programme.code}-{seq}{FILE_SUFFIX}"')
    return response


@blueprint.get("/wallet/catalog")
@wallet_open
def catalog_page():
    programme, _member = _programme_and_member()
    return _catalog_page(programme)


@blueprint.post("/wallet/vouchers")
@wallet_open
def make_voucher():
    """Turn points into a voucher, once however many taps: the key is the catalog page's."""
    programme, member = _programme_and_member()
    attempt = request.form.get("attempt", "")
    item = request.form.get("item") or None
    points_text = request.form.get("points", "").strip()
    if not ATTEMPT_PATTERN.match(attempt) or (item is None) == (not points_text) or (
            item is not None and not CODE_PATTERN.match(item)):
        abort(400)
    points = None
    if item is None:
        if not points_text.isdecimal() or not 0 < int(points_text) <= MAX_POINTS:
            return _catalog_page(programme, refusal="bad_points", status=422)
        points = int(points_text)
    try:
        voucher = vouchers.issue_voucher(
            engine(), programme.code, member, actor=g.caller.actor, points=points, item=item,
            idempotency_key=f"{ATTEMPT_KEY_PREFIX}{member}:{attempt}")
    except (RedemptionError, errors.IdempotencyConflict, errors.InvalidEntry) as refusal:
        g.refusal_code = refusal.code
        return _catalog_page(programme, refusal=refusal.code, status=409)
    return redirect(url_for(".voucher_page", voucher_id=voucher.id, new=1), code=303)


@blueprint.get("/wallet/vouchers")
@wallet_open
def vouchers_page():
    programme, member = _programme_and_member()
    found = vouchers.list_vouchers(engine(), programme.code, member=member,
                                   limit=MAX_VOUCHERS_SHOWN)
    views = [_voucher_view(programme, voucher) for voucher in found]
    return _render("wallet/vouchers.html", "vouchers", programme,
                   usable=[view for view in views if view.voucher.status == vouchers.ISSUED],
                   past=[view for view in views if view.voucher.status != vouchers.ISSUED],
                   shops=_active_shop_names(programme))


@blueprint.get("/wallet/vouchers/<voucher_id>")
@wallet_open
def voucher_page(voucher_id: str):
    programme, member = _programme_and_member()
    try:
        voucher = vouchers.get_voucher(engine(), programme.code, voucher_id)
    except UnknownVoucher:
        abort(404)
    if voucher.member != member:
        abort(404)
    return _render("wallet/voucher.html", "vouchers", programme,
                   view=_voucher_view(programme, voucher), new=request.args.get("new") == "1",
                   shops=_active_shop_names(programme))


# -- what the pages show ------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryLine:
    """One entry of the resident's history, in words: what, by whose hand, under which rule."""

    seq: int
    kind: str
    points: int
    occurred_at: str
    rule_name: str | None
    category: str | None
    recorded_by: str | None
    """The organiser's name; None when the resident did it (a voucher) or the system did."""
    by_system: bool
    by_resident: bool
    approved_by: str | None
    memo: str
    reverses: int | None
    provable: bool
    """A signed checkpoint covers the entry, so its proof file can be downloaded."""


@dataclass(frozen=True)
class VoucherView:
    voucher: vouchers.Voucher
    qr: Markup | None
    """Drawn for a voucher that can still be used."""
    item_name: str | None
    money_fen: int | None
    goods: bool
    valid_through: str | None
    expires_at: str
    redeemed_at: str | None = None
    redeemed_shop: str | None = None


def _history_lines(programme: ProgrammeInfo, member: str,
                   lines: list[StatementLine]) -> list[HistoryLine]:
    try:
        covered = latest_signed(engine(), programme.code).size
    except NoCheckpoint:
        covered = 0
    rules: dict[tuple[str, int], tuple[str, str]] = {}
    for code in {line.rule_code for line in lines if line.rule_code is not None}:
        for rule in rule_versions(engine(), programme.id, code):
            rules[(code, rule.version)] = (rule.name, rule.category)
    names = _staff_names(programme.code)
    shown = []
    for line in lines:
        rule_name, category = rules.get((line.rule_code, line.rule_version), (None, None))
        by_system = line.actor.startswith(SYSTEM_PREFIX)
        by_resident = line.actor == member
        shown.append(HistoryLine(
            seq=line.seq, kind=line.kind, points=line.points,
            occurred_at=local_time(line.occurred_at, programme.zone), rule_name=rule_name,
            category=category,
            recorded_by=None if by_system or by_resident else names.get(line.actor, line.actor),
            by_system=by_system, by_resident=by_resident,
            approved_by=names.get(line.approver, line.approver) if line.approver else None,
            memo=line.memo, reverses=line.reverses, provable=line.seq < covered))
    return shown


def _staff_names(programme: str) -> dict[str, str]:
    """The name each staff principal's sign-in shows, to say who recorded an entry."""
    return {account.principal: account.display_name
            for account in accounts.list_accounts(engine(), programme)
            if account.kind == accounts.STAFF}


def _voucher_view(programme: ProgrammeInfo, voucher: vouchers.Voucher) -> VoucherView:
    fen_per_point = get_settings(engine(), programme.code).fen_per_point
    item_name, money_fen, goods = None, voucher.value_points * fen_per_point, False
    if voucher.item is not None:
        try:
            item = catalog.get_item(engine(), programme.code, voucher.item)
            item_name = item.name
            goods = item.kind == catalog.GOODS
            money_fen = item.value_fen
        except UnknownItem:
            item_name, money_fen, goods = voucher.item, None, True
    qr = None
    redeemed_at = redeemed_shop = None
    if voucher.status == vouchers.ISSUED:
        token = vouchers.voucher_token(engine(), programme.code, voucher.id)
        qr = qr_svg(token, voucher.display_code, css_class="qr voucher-qr")
    elif voucher.status == vouchers.REDEEMED:
        redemption = redemptions.get_redemption(engine(), programme.code, voucher.id)
        redeemed_at = local_time(redemption.redeemed_at, programme.zone)
        redeemed_shop = _active_shop_names(programme, every=True).get(redemption.shop,
                                                                      redemption.shop)
    return VoucherView(voucher, qr, item_name, money_fen, goods,
                       last_valid_day(voucher.expires_at, programme.zone),
                       local_time(voucher.expires_at, programme.zone), redeemed_at,
                       redeemed_shop)


def _active_shop_names(programme: ProgrammeInfo, every: bool = False) -> dict[str, str]:
    return {shop.code: shop.name for shop in list_shops(engine(), programme.code)
            if every or shop.status == ACTIVE}


def _catalog_page(programme: ProgrammeInfo, refusal: str | None = None, status: int = 200):
    member = g.resident.member
    balance = balance_of(engine(), programme.code, member_account(member)).balance_points
    items = catalog.list_items(engine(), programme.code)
    return _render("wallet/catalog.html", "catalog", programme, balance=balance, items=items,
                   fen_per_point=get_settings(engine(), programme.code).fen_per_point,
                   attempt=secrets.token_urlsafe(16), refusal=refusal,
                   max_points=min(balance, MAX_POINTS)), status


def _open_page(refusal: str | None) -> str:
    return render_template("wallet/open.html", refusal=refusal, resident=g.get("resident"),
                           code_shape=residents.display("X" * residents.CODE_CHARS))


def _programme_and_member() -> tuple[ProgrammeInfo, str]:
    """The wallet's programme and member, authorised as the member's own key would be."""
    require_member_access(g.resident.programme, g.resident.member)
    return get_programme(engine(), g.resident.programme), g.resident.member


def _render(template: str, tab: str, programme: ProgrammeInfo, **context: Any) -> str:
    return render_template(template, tab=tab, programme=programme, resident=g.resident,
                           **context)
