"""Vouchers (抵扣券): a member's points held for one purchase until redeemed, cancelled or expired.

Issuing posts a `voucher_issue` entry (member −points, `held` +points). The
entry's guard runs inside the chain lock and refuses a member whose
spendable balance would go below zero (`insufficient_balance`); for goods it
takes one unit of stock by a conditional UPDATE (`out_of_stock`). The entry
names the lots it drew (`ledger.expiry.draw_lots`): they are computed
before the lock and computed again in the guard, and if the member's points
moved in between the issue starts over, so the lots recorded are the ones
the replay draws.

Returning points: cancel and expiry. A cancelled or expired voucher gives
its points back to the member with `voucher_cancel` / `voucher_expire`
entries (`held` −, member +), posted in the same transaction as the status
change, whose conditional UPDATE (`status = 'issued'` → new status) makes
cancel, expiry and redemption exclusive. Decision, for lots: the ledger's
replay makes any credit other than a reversal a *new lot*, dated by its
`occurred_at`. A plain return dated today would therefore give the points
a fresh expiry, and issuing then cancelling would keep points alive
forever. `ledger.chain.reverse` would restore the original lots, but it is a
`reversal` entry and takes no guard, so the voucher's status could not
change in its transaction. So the points go back in one entry per date of
the lots they came from, each with `occurred_at` set to that lot's own
`occurred_at`: the new lot then expires when the old one would have (under
the policy now in force), points that had meanwhile passed their expiry
are taken by the next `jifen expire`, and `recorded_at` still says when the
return happened. Metadata names the voucher and the lots returned.

Idempotency. Issue: the same key returns the same voucher (the key is kept
on the voucher row and in the entry's key, `voucher-issue:<key>`). Cancel
and expiry: their entry keys are derived from the voucher, so a retry or a
concurrent run posts nothing twice.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import member_account
from ledger.chain import MAX_POINTS, Draft, Entry, Posting, Prepared, append_batch, load_entries
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.expiry import draw_lots
from ledger.organisation import find_member
from ledger.programmes import ProgrammeInfo, get_programme, open_account
from ledger.statements import balance_of, balance_on
from ledger.storage import read_transaction
from redemption import codes, signing_keys, tokens
from redemption.catalog import ItemInfo, put_back_one, require_item, take_one
from redemption.errors import (
    AlreadyRedeemed,
    InsufficientBalance,
    UnknownVoucher,
    VoucherCancelled,
    VoucherExpired,
)
from redemption.models import CatalogItem, Redemption, Shop
from redemption.models import Voucher as VoucherRow
from redemption.settings import MAX_VOUCHER_VALIDITY_DAYS, settings_on
from redemption.shops import require_shop

HELD = "held"
"""The programme's hold account: points of vouchers issued and not yet redeemed or returned."""
HOLD_KIND = "hold"
ISSUED = "issued"
REDEEMED = "redeemed"
CANCELLED = "cancelled"
EXPIRED = "expired"
DEFAULT_EXPIRY_ACTOR = "system:voucher-expiry"
MAX_ATTEMPTS = 5
"""Times an issue starts over because the member's lots moved before the lock was taken,
and times an expiry run selects again after a racing run's entries took its keys."""
EXPIRY_BATCH_VOUCHERS = 200
"""Vouchers expired per transaction: each batch holds the chain lock once."""
MAX_SHOPS_PER_VOUCHER = 50
MAX_CLIENT_KEY_CHARS = 150
MAX_ACTOR_CHARS = 200
ISSUE_KEY_PREFIX = "voucher-issue:"
CANCEL_KEY_PREFIX = "voucher-cancel:"
EXPIRE_KEY_PREFIX = "voucher-expire:"


@dataclass(frozen=True)
class Voucher:
    id: str
    programme: str
    member: str
    value_points: int
    item: str | None
    shops: tuple[str, ...] | None
    """Where it is valid; None for every shop of the programme."""
    status: str
    short_code: str
    """Canonical, without hyphens; `display_code` is the form shown to people."""
    key_id: str
    issued_at: str
    expires_at: str
    issue_seq: int
    lots: tuple[tuple[int, int], ...]
    closed_seq: int | None
    closed_at: str | None

    @property
    def display_code(self) -> str:
        return codes.display(self.short_code)

    def claims(self) -> dict[str, Any]:
        """What its token says: no personal data, only what a shop needs to check it."""
        claims: dict[str, Any] = {"exp": self.expires_at, "jti": self.id,
                                  "points": self.value_points, "programme": self.programme}
        if self.item is not None:
            claims["item"] = self.item
        return claims


class _LotsMoved(Exception):
    """The member's lots changed between planning an issue and taking the lock."""


# -- issuing -------------------------------------------------------------------------------


def issue_voucher(
    engine: Engine,
    programme: str,
    member: str,
    *,
    actor: str,
    points: int | None = None,
    item: str | None = None,
    shops: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> Voucher:
    """Turn `points` of `member` (or the price of catalog `item`) into a voucher.

    Valid at `shops` (None: every shop) until `expires_at` (default: the end
    of the day the programme's validity days from today, programme time).
    `actor` is the member or the organiser acting for them; who may is the
    caller's decision. The same `idempotency_key` returns the same voucher.

    Raises `UnknownProgramme`, `UnknownMember`, `UnknownItem`, `UnknownShop`,
    `InvalidEntry` (points and item both or neither, a bad expiry or key),
    `InsufficientBalance`, `OutOfStock`, `IdempotencyConflict` (the key was
    used for another voucher request), `StorageBusy`.
    """
    if (points is None) == (item is None):
        raise errors.InvalidEntry("give either points or a catalog item", field="points")
    check_actor(actor)
    check_client_key(idempotency_key)
    shop_codes = _check_shops(shops)
    now = datetime.now(UTC)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        find_member(connection, programme_info.id, member)
        item_info = require_item(connection, programme_info.id, programme, item) if item else None
        for shop in shop_codes or ():
            require_shop(connection, programme_info.id, programme, shop)
        validity_days = settings_on(connection, programme_info.id).voucher_validity_days
    value_points = item_info.price_points if item_info else points
    if type(value_points) is not int or not 0 < value_points <= MAX_POINTS:
        raise errors.InvalidAmount(f"points must be an integer from 1 to {MAX_POINTS}",
                                   field="points")
    if expires_at is None:
        expires_at = _end_of_day(now.astimezone(programme_info.zone).date()
                                 + timedelta(days=validity_days), programme_info)
    elif not isinstance(expires_at, datetime) or expires_at.utcoffset() is None or not (
            now < expires_at <= now + timedelta(days=MAX_VOUCHER_VALIDITY_DAYS)):
        raise errors.InvalidEntry(
            f"expires_at must be a moment with a time zone, in the next "
            f"{MAX_VOUCHER_VALIDITY_DAYS} days", field="expires_at")
    request = (member, value_points, item, shop_codes)
    if idempotency_key is not None:
        earlier = _find_by_issue_key(engine, programme_info, idempotency_key)
        if earlier is not None:
            return _same_request(earlier, request, idempotency_key)

    _ensure_held_account(engine, programme)
    key_id = signing_keys.ensure_signing_key(engine, programme)
    account = member_account(member)
    balance_points = balance_of(engine, programme, account).balance_points
    if balance_points < value_points:
        raise _insufficient(member, balance_points, value_points)

    for _ in range(MAX_ATTEMPTS):
        lots = draw_lots(engine, programme, member, value_points)
        voucher_id = new_voucher_id()
        row = {
            "id": voucher_id, "programme_id": programme_info.id, "member_code": member,
            "value_points": value_points, "item_id": item_info.id if item_info else None,
            "shops_json": json.dumps(list(shop_codes)) if shop_codes is not None else None,
            "status": ISSUED, "short_code": codes.new_short_code(), "key_id": key_id,
            "expires_at": format_timestamp(expires_at), "issue_key": idempotency_key,
            "lots_json": json.dumps([list(lot) for lot in lots]),
        }
        metadata: dict[str, Any] = {"lots": [list(lot) for lot in lots], "voucher": voucher_id}
        if item_info:
            metadata["item"] = item_info.code
        draft = Draft(
            kind="voucher_issue",
            postings=[Posting(account, -value_points), Posting(HELD, value_points)],
            actor=actor,
            memo=f"voucher {voucher_id} for {member}: {value_points} points",
            metadata=metadata,
            idempotency_key=ISSUE_KEY_PREFIX + idempotency_key if idempotency_key else None,
        )
        guard = _issue_guard(programme, member, account, value_points, lots, item_info)
        try:
            appended = append_batch(engine, programme, [draft], guard=guard,
                                    after_write=_insert_voucher(row))[0]
        except _LotsMoved:
            continue
        except errors.IdempotencyConflict:
            earlier = _find_by_issue_key(engine, programme_info, idempotency_key or "")
            if earlier is None:
                raise
            return _same_request(earlier, request, idempotency_key or "")
        if appended is None or not appended.created:
            raise errors.IntegrityViolation(f"issuing voucher {voucher_id} posted no entry")
        return get_voucher(engine, programme, voucher_id)
    raise errors.StorageBusy(
        f"the points of {member} kept moving while the voucher was issued; retry")


def _issue_guard(programme: str, member: str, account: str, value_points: int,
                 lots: list[tuple[int, int]], item: ItemInfo | None):
    def guard(connection: Connection, programme_info: ProgrammeInfo,
              prepared: Sequence[Prepared]) -> None:
        balance_points = balance_on(connection, programme_info.id, account).balance_points
        if balance_points < value_points:
            raise _insufficient(member, balance_points, value_points)
        if draw_lots(connection, programme, member, value_points) != lots:
            raise _LotsMoved()
        if sum(points for _, points in lots) != value_points:
            raise errors.IntegrityViolation(
                f"the lots of {member} cover {sum(p for _, p in lots)} points, not the "
                f"{value_points} of a balance of {balance_points}")
        if item is not None:
            take_one(connection, item)

    return guard


def _insert_voucher(row: dict[str, Any]):
    def record(connection: Connection, programme_info: ProgrammeInfo,
               entries: Sequence[Entry]) -> None:
        connection.execute(insert(VoucherRow).values(
            **row, issue_seq=entries[0].seq, issued_at=entries[0].recorded_at))

    return record


def _insufficient(member: str, balance_points: int, value_points: int) -> InsufficientBalance:
    return InsufficientBalance(
        f"{member} has {balance_points} spendable points; the voucher needs {value_points}",
        member=member, balance_points=balance_points, points=value_points)


def _same_request(voucher: Voucher, request: tuple, key: str) -> Voucher:
    if (voucher.member, voucher.value_points, voucher.item, voucher.shops) != request:
        raise errors.IdempotencyConflict(
            f"idempotency key {key!r} was used for voucher {voucher.id}, another request",
            idempotency_key=key, voucher=voucher.id)
    return voucher


def _ensure_held_account(engine: Engine, programme: str) -> None:
    """Open the programme's hold account on first use; another process opening it at the
    same moment is fine."""
    try:
        balance_of(engine, programme, HELD)
        return
    except errors.UnknownAccount:
        pass
    try:
        open_account(engine, programme, HELD, HOLD_KIND)
    except (errors.AlreadyExists, errors.IntegrityViolation):
        # Opened by a racing issue: open_account's existence check and insert are
        # not atomic, so the loser gets the unique constraint's refusal instead.
        balance_of(engine, programme, HELD)


def new_voucher_id() -> str:
    """16 random bytes (128 bits) as 26 lower-case base32 characters: unguessable."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


# -- reading -------------------------------------------------------------------------------


def get_voucher(engine: Engine, programme: str, voucher_id: str) -> Voucher:
    """Raises `UnknownProgramme`, `UnknownVoucher`."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        return require_voucher(connection, programme_info, voucher_id)


def list_vouchers(engine: Engine, programme: str, member: str | None = None,
                  status: str | None = None, limit: int = 100) -> list[Voucher]:
    """The newest vouchers first, optionally of one member or in one status."""
    if type(limit) is not int or not 1 <= limit <= 1_000:
        raise errors.InvalidEntry("limit must be 1-1000", field="limit")
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        query = _voucher_query().where(VoucherRow.programme_id == programme_info.id)
        if member is not None:
            query = query.where(VoucherRow.member_code == member)
        if status is not None:
            query = query.where(VoucherRow.status == status)
        rows = connection.execute(query.order_by(VoucherRow.issue_seq.desc()).limit(limit))
        return [_voucher(row, programme) for row in rows]


def voucher_token(engine: Engine, programme: str, voucher_id: str) -> str:
    """The voucher's PASETO v4.public token, signed by the key recorded at issue.

    Ed25519 is deterministic, so the same voucher always renders the same
    token. Raises `UnknownVoucher`, `SigningKeyUnavailable`.
    """
    voucher = get_voucher(engine, programme, voucher_id)
    secret = signing_keys.secret_key(engine, programme, voucher.key_id)
    message = json.dumps(voucher.claims(), separators=(",", ":"), sort_keys=True,
                         ensure_ascii=False).encode("utf-8")
    return tokens.sign(message, secret, tokens.footer_json(voucher.key_id))


def require_voucher(connection: Connection, programme: ProgrammeInfo,
                    voucher_id: str) -> Voucher:
    row = connection.execute(
        _voucher_query().where(VoucherRow.programme_id == programme.id,
                               VoucherRow.id == voucher_id)
    ).first()
    if row is None:
        raise UnknownVoucher(f"no voucher {voucher_id!r} in programme {programme.code!r}",
                             voucher=voucher_id)
    return _voucher(row, programme.code)


def find_by_short_code(connection: Connection, programme: ProgrammeInfo,
                       short_code: str) -> Voucher:
    """The voucher with canonical `short_code`; raises `UnknownVoucher`."""
    row = connection.execute(
        _voucher_query().where(VoucherRow.programme_id == programme.id,
                               VoucherRow.short_code == short_code)
    ).first()
    if row is None:
        raise UnknownVoucher(f"no voucher with code {codes.display(short_code)}",
                             short_code=codes.display(short_code))
    return _voucher(row, programme.code)


def _voucher_query():
    return select(VoucherRow, CatalogItem.code.label("item_code")).outerjoin(
        CatalogItem, CatalogItem.id == VoucherRow.item_id)


def _voucher(row: Any, programme: str) -> Voucher:
    return Voucher(
        id=row.id, programme=programme, member=row.member_code, value_points=row.value_points,
        item=row.item_code,
        shops=tuple(json.loads(row.shops_json)) if row.shops_json is not None else None,
        status=row.status, short_code=row.short_code, key_id=row.key_id,
        issued_at=row.issued_at, expires_at=row.expires_at, issue_seq=row.issue_seq,
        lots=tuple((seq, points) for seq, points in json.loads(row.lots_json)),
        closed_seq=row.closed_seq, closed_at=row.closed_at,
    )


def _find_by_issue_key(engine: Engine, programme: ProgrammeInfo, key: str) -> Voucher | None:
    with read_transaction(engine) as connection:
        row = connection.execute(
            _voucher_query().where(VoucherRow.programme_id == programme.id,
                                   VoucherRow.issue_key == key)
        ).first()
    return _voucher(row, programme.code) if row else None


def require_held(connection: Connection, programme: ProgrammeInfo, points: int) -> None:
    """Refuse to take `points` from `held` unless it holds them (`IntegrityViolation`).

    Only vouchers put points in `held`, so this cannot fail unless something
    outside redemption moved them (a reversal of a voucher_issue entry, say):
    then the books need a person, not a silent negative hold.
    """
    held_points = balance_on(connection, programme.id, HELD).balance_points
    if held_points < points:
        raise errors.IntegrityViolation(
            f"{HELD} holds {held_points} points, fewer than the {points} to take from it; "
            "was a voucher entry reversed?", held_points=held_points, points=points)


def refuse_unless_issued(connection: Connection, voucher: Voucher) -> None:
    """Raise the refusal a voucher that is no longer `issued` earns (none if it is).

    `AlreadyRedeemed` names when, where and the entry; cancelled and expired
    vouchers give `VoucherCancelled` and `VoucherExpired`.
    """
    if voucher.status == REDEEMED:
        row = connection.execute(
            select(Redemption.redeemed_at, Redemption.entry_seq, Shop.code)
            .join(Shop, Shop.id == Redemption.shop_id)
            .where(Redemption.voucher_id == voucher.id)
        ).one()
        raise AlreadyRedeemed(
            f"voucher {voucher.display_code} was redeemed at {row.code} at {row.redeemed_at}",
            voucher=voucher.id, redeemed_at=row.redeemed_at, shop=row.code, seq=row.entry_seq)
    if voucher.status == CANCELLED:
        raise VoucherCancelled(f"voucher {voucher.display_code} was cancelled",
                               voucher=voucher.id, seq=voucher.closed_seq)
    if voucher.status == EXPIRED:
        raise VoucherExpired(f"voucher {voucher.display_code} expired at {voucher.expires_at}",
                             voucher=voucher.id, expires_at=voucher.expires_at,
                             seq=voucher.closed_seq)


# -- returning points: cancel and expiry ------------------------------------------------------


def cancel_voucher(engine: Engine, programme: str, voucher_id: str, *, actor: str,
                   memo: str = "") -> Voucher:
    """Return a voucher's points to its member (`voucher_cancel`); goods go back to stock.

    Idempotent: cancelling a cancelled voucher returns it unchanged. The
    member or an admin may cancel; who is the caller's decision. Raises
    `UnknownVoucher`, `AlreadyRedeemed`, `VoucherExpired`, `InvalidEntry`.
    """
    check_actor(actor)
    voucher = get_voucher(engine, programme, voucher_id)
    if voucher.status != CANCELLED:
        with read_transaction(engine) as connection:
            refuse_unless_issued(connection, voucher)
        drafts = _return_drafts(engine, voucher, "voucher_cancel", CANCEL_KEY_PREFIX, actor,
                                memo or f"voucher {voucher.id} cancelled")
        try:
            append_batch(engine, programme, drafts,
                         guard=_close_guard(CANCELLED, as_of=None, refuse=True),
                         after_write=_record_closed)
        except errors.IdempotencyConflict:
            pass  # another actor's cancel of the same voucher posted first; see below
        voucher = get_voucher(engine, programme, voucher_id)
    if voucher.status != CANCELLED:
        with read_transaction(engine) as connection:
            refuse_unless_issued(connection, voucher)
    return voucher


def expire_vouchers(engine: Engine, programme: str, as_of: datetime | date | None = None,
                    actor: str = DEFAULT_EXPIRY_ACTOR) -> list[Voucher]:
    """Return the points of every voucher still unredeemed at its expiry (`voucher_expire`).

    `as_of` (default now; a date means its first moment, programme time)
    must not be in the future. Idempotent: a rerun finds nothing left to do,
    and a run racing a redemption, a cancel or another run expires each
    voucher at most once. Returns the vouchers this call expired. Raises
    `UnknownProgramme`, `InvalidEntry`.
    """
    check_actor(actor)
    programme_info = get_programme(engine, programme)
    now = datetime.now(UTC)
    if as_of is None:
        as_of = now
    elif isinstance(as_of, date) and not isinstance(as_of, datetime):
        as_of = datetime.combine(as_of, time(), programme_info.zone)
    if as_of.utcoffset() is None or as_of > now:
        raise errors.InvalidEntry("as_of must be a moment with a time zone, not in the future",
                                  field="as_of")
    as_of_text = format_timestamp(as_of)
    expired: list[str] = []
    conflicts = 0
    while True:
        with read_transaction(engine) as connection:
            rows = connection.execute(
                _voucher_query()
                .where(VoucherRow.programme_id == programme_info.id,
                       VoucherRow.status == ISSUED, VoucherRow.expires_at <= as_of_text)
                .order_by(VoucherRow.expires_at, VoucherRow.id)
                .limit(EXPIRY_BATCH_VOUCHERS)
            ).all()
        if not rows:
            break
        drafts = []
        for row in rows:
            voucher = _voucher(row, programme)
            drafts.extend(_return_drafts(engine, voucher, "voucher_expire", EXPIRE_KEY_PREFIX,
                                         actor, f"voucher {voucher.id} expired unredeemed"))
        try:
            results = append_batch(engine, programme, drafts,
                                   guard=_close_guard(EXPIRED, as_of=as_of_text, refuse=False),
                                   after_write=_record_closed)
        except errors.IdempotencyConflict:
            # Another run (another actor) expired some of these: select again.
            conflicts += 1
            if conflicts >= MAX_ATTEMPTS:
                raise
            continue
        expired.extend(dict.fromkeys(
            result.entry.metadata["voucher"] for result in results
            if result is not None and result.created))
    return [get_voucher(engine, programme, voucher_id) for voucher_id in expired]


def _return_drafts(engine: Engine, voucher: Voucher, kind: str, key_prefix: str, actor: str,
                   memo: str) -> list[Draft]:
    """One entry per date of the lots the voucher drew, dated like those lots (see above)."""
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, voucher.programme)
        lot_entries = load_entries(connection, programme_info, [seq for seq, _ in voucher.lots])
    by_date: dict[str, list[list[int]]] = {}
    for seq, points in voucher.lots:
        by_date.setdefault(lot_entries[seq].occurred_at, []).append([seq, points])
    groups = list(by_date.items()) or [(None, [])]
    account = member_account(voucher.member)
    drafts = []
    for part, (occurred_at, lots) in enumerate(groups):
        points = sum(lot_points for _, lot_points in lots) if lots else voucher.value_points
        drafts.append(Draft(
            kind=kind,
            postings=[Posting(HELD, -points), Posting(account, points)],
            actor=actor,
            occurred_at=parse_timestamp(occurred_at) if occurred_at else None,
            memo=memo,
            metadata={"lots": lots, "voucher": voucher.id},
            idempotency_key=f"{key_prefix}{voucher.id}:{part}",
        ))
    return drafts


def _close_guard(status: str, as_of: str | None, refuse: bool):
    """Move each voucher `issued` → `status` by a conditional UPDATE, inside the lock.

    A voucher that is no longer issued (redeemed, cancelled or expired by a
    racing transaction) is refused (`refuse`) or its drafts left out.
    """

    def guard(connection: Connection, programme_info: ProgrammeInfo,
              prepared: Sequence[Prepared]) -> set[int]:
        positions: dict[str, list[int]] = {}
        for position, item in enumerate(prepared):
            positions.setdefault(item.draft.metadata["voucher"], []).append(position)
        left_out: set[int] = set()
        returned_points = 0
        for voucher_id, voucher_positions in positions.items():
            condition = [VoucherRow.id == voucher_id, VoucherRow.status == ISSUED]
            if as_of is not None:
                condition.append(VoucherRow.expires_at <= as_of)
            moved = connection.execute(
                update(VoucherRow).where(*condition).values(status=status)
                .returning(VoucherRow.item_id)
            ).all()
            if moved:
                returned_points += sum(prepared[position].draft.postings[1].points
                                       for position in voucher_positions)
                if moved[0].item_id is not None:
                    put_back_one(connection, moved[0].item_id)
            elif refuse:
                refuse_unless_issued(connection,
                                     require_voucher(connection, programme_info, voucher_id))
                raise errors.IntegrityViolation(f"voucher {voucher_id} did not change state")
            else:
                left_out.update(voucher_positions)
        if returned_points:
            require_held(connection, programme_info, returned_points)
        return left_out

    return guard


def _record_closed(connection: Connection, programme_info: ProgrammeInfo,
                   entries: Sequence[Entry]) -> None:
    first: dict[str, Entry] = {}
    for entry in entries:
        first.setdefault(entry.metadata["voucher"], entry)
    for voucher_id, entry in first.items():
        connection.execute(update(VoucherRow).where(VoucherRow.id == voucher_id)
                           .values(closed_seq=entry.seq, closed_at=entry.recorded_at))


# -- checks --------------------------------------------------------------------------------


def _end_of_day(day: date, programme: ProgrammeInfo) -> datetime:
    """The first moment of the day after `day`, programme time: valid through `day`."""
    return datetime.combine(day + timedelta(days=1), time(), programme.zone).astimezone(UTC)


def check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_CHARS or (
            "\x00" in actor):
        raise errors.InvalidEntry(f"actor must be 1-{MAX_ACTOR_CHARS} characters, without NUL",
                                  field="actor")


def check_client_key(key: str | None) -> None:
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_CLIENT_KEY_CHARS
                                and key.isascii() and key.isprintable()):
        raise errors.InvalidEntry(
            f"idempotency_key must be 1-{MAX_CLIENT_KEY_CHARS} printable ASCII characters",
            field="idempotency_key")


def _check_shops(shops: Sequence[str] | None) -> tuple[str, ...] | None:
    if shops is None:
        return None
    if isinstance(shops, str):
        raise errors.InvalidEntry("shops must be a list of shop codes", field="shops")
    codes_given = tuple(shops)
    if not codes_given or len(codes_given) > MAX_SHOPS_PER_VOUCHER or (
            len(set(codes_given)) != len(codes_given)):
        raise errors.InvalidEntry(
            f"shops must list 1-{MAX_SHOPS_PER_VOUCHER} distinct shop codes (or be left out "
            "for every shop)", field="shops")
    return tuple(sorted(codes_given))
