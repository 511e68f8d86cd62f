"""Settlement (结算): the programme pays a shop for the vouchers it redeemed.

A statement lists a shop's redemptions in a period (dates in the
programme's time zone, both included): each voucher, the `seq` of its
`voucher_redeem` entry (so every line ties back to the chain), its points,
when, and the settlement that paid it if any; then the totals in points
and in money at the programme's rate (fen per point).

`settle` pays what is unsettled in the period: one `settlement` entry moves
the total from `shop:<code>` to `settled` and names the payment reference
(bank transfer, receipt number); the redemptions it covers are marked with
its `seq` in the same transaction. A redemption is never settled twice: the
guard confirms, inside the chain lock, that every one is still unsettled,
and the marking is a conditional UPDATE (`… WHERE settlement_seq IS NULL`)
whose row count must equal the number of redemptions, or the whole
settlement rolls back. The caller's idempotency key makes a retry return
the same settlement.

Exports: CSV (UTF-8 with a byte-order mark, so Excel shows Chinese names
intact) and JSON, both carrying the entry seqs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.accounts import SETTLED
from ledger.chain import Draft, Entry, Posting, Prepared, append_batch
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.statements import balance_on
from ledger.storage import read_transaction
from redemption.codes import display
from redemption.errors import NothingToSettle
from redemption.models import CatalogItem, Settlement, Shop, Voucher
from redemption.models import Redemption as RedemptionRow
from redemption.settings import settings_on
from redemption.shops import ShopInfo, require_shop, shop_account

MAX_PERIOD_DAYS = 366
MAX_REFERENCE_CHARS = 200
MAX_CLIENT_KEY_CHARS = 150
MAX_ATTEMPTS = 5
"""Times `settle` recomputes when redemptions were settled by another call meanwhile."""
SETTLE_KEY_PREFIX = "settlement:"
_CHUNK = 500


@dataclass(frozen=True)
class StatementLine:
    voucher_id: str
    short_code: str
    entry_seq: int
    """The `voucher_redeem` entry in the programme's chain."""
    value_points: int
    item: str | None
    redeemed_at: str
    """When the redeem entry was recorded (UTC, as hashed)."""
    redeemed_at_local: str
    """The same moment in the programme's time zone, for people."""
    settlement_seq: int | None
    money_fen: int
    """At the rate of the settlement that paid it, or today's rate if unsettled."""


@dataclass(frozen=True)
class SettlementInfo:
    programme: str
    shop: str
    entry_seq: int
    period_start: str
    period_end: str
    redemption_count: int
    total_points: int
    fen_per_point: int
    total_fen: int
    payment_reference: str
    actor: str
    settled_at: str
    created: bool = True
    """False when an idempotent retry got the earlier settlement back."""


@dataclass(frozen=True)
class Statement:
    programme: str
    shop: str
    shop_name: str
    period_start: str
    period_end: str
    time_zone: str
    fen_per_point: int
    """The programme's rate today, used for unsettled lines."""
    lines: list[StatementLine]
    total_points: int
    total_fen: int
    unsettled_points: int
    unsettled_fen: int
    settlements: list[SettlementInfo]


class _Raced(Exception):
    """Some of the redemptions were settled by another call after they were listed."""


def statement(engine: Engine, programme: str, shop: str, start: date, end: date) -> Statement:
    """Every redemption at `shop` from `start` to `end` (programme dates, both included).

    Raises `UnknownProgramme`, `UnknownShop`, `InvalidEntry` (a period that
    ends before it starts or is longer than `MAX_PERIOD_DAYS`).
    """
    with read_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        programme_info = get_programme(connection, programme)
        shop_info = require_shop(connection, programme_info.id, programme, shop)
        low, high = _period(programme_info, start, end)
        rate = settings_on(connection, programme_info.id).fen_per_point
        rows = connection.execute(
            select(RedemptionRow.voucher_id, Voucher.short_code, RedemptionRow.entry_seq,
                   RedemptionRow.value_points, CatalogItem.code, RedemptionRow.redeemed_at,
                   RedemptionRow.settlement_seq, Settlement.fen_per_point)
            .join(Voucher, Voucher.id == RedemptionRow.voucher_id)
            .outerjoin(CatalogItem, CatalogItem.id == Voucher.item_id)
            .outerjoin(Settlement, (Settlement.programme_id == RedemptionRow.programme_id)
                       & (Settlement.entry_seq == RedemptionRow.settlement_seq))
            .where(RedemptionRow.shop_id == shop_info.id, RedemptionRow.redeemed_at >= low,
                   RedemptionRow.redeemed_at < high)
            .order_by(RedemptionRow.entry_seq)
        ).all()
        settlement_seqs = sorted({row.settlement_seq for row in rows if row.settlement_seq})
        settlements = _settlements(connection, programme_info, shop_info, settlement_seqs)
    lines = [
        StatementLine(
            voucher_id=row.voucher_id, short_code=row.short_code, entry_seq=row.entry_seq,
            value_points=row.value_points, item=row.code, redeemed_at=row.redeemed_at,
            redeemed_at_local=parse_timestamp(row.redeemed_at).astimezone(programme_info.zone)
            .strftime("%Y-%m-%d %H:%M:%S"),
            settlement_seq=row.settlement_seq,
            money_fen=row.value_points * (row.fen_per_point or rate),
        )
        for row in rows
    ]
    unsettled = [line for line in lines if line.settlement_seq is None]
    return Statement(
        programme=programme, shop=shop_info.code, shop_name=shop_info.name,
        period_start=start.isoformat(), period_end=end.isoformat(),
        time_zone=programme_info.time_zone, fen_per_point=rate, lines=lines,
        total_points=sum(line.value_points for line in lines),
        total_fen=sum(line.money_fen for line in lines),
        unsettled_points=sum(line.value_points for line in unsettled),
        unsettled_fen=sum(line.money_fen for line in unsettled),
        settlements=settlements,
    )


def settle(engine: Engine, programme: str, shop: str, start: date, end: date, *,
           payment_reference: str, actor: str, idempotency_key: str) -> SettlementInfo:
    """Pay `shop` for its unsettled redemptions from `start` to `end`; post the entry.

    The same `idempotency_key` returns the same settlement. Raises
    `UnknownProgramme`, `UnknownShop`, `InvalidEntry`, `NothingToSettle`,
    `IdempotencyConflict` (the key was used for another settlement),
    `StorageBusy`.
    """
    _check_text(payment_reference, "payment_reference", MAX_REFERENCE_CHARS)
    _check_text(actor, "actor", MAX_REFERENCE_CHARS)
    if not (isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= MAX_CLIENT_KEY_CHARS
            and idempotency_key.isascii() and idempotency_key.isprintable()):
        raise errors.InvalidEntry(
            f"idempotency_key must be 1-{MAX_CLIENT_KEY_CHARS} printable ASCII characters",
            field="idempotency_key")
    request = (shop, start.isoformat(), end.isoformat(), payment_reference)
    for _ in range(MAX_ATTEMPTS):
        with read_transaction(engine) as connection:
            programme_info = get_programme(connection, programme)
            shop_info = require_shop(connection, programme_info.id, programme, shop)
            low, high = _period(programme_info, start, end)
            earlier = connection.execute(
                select(Settlement.entry_seq).where(Settlement.programme_id == programme_info.id,
                                                   Settlement.idempotency_key == idempotency_key)
            ).scalar_one_or_none()
            if earlier is not None:
                return _same_request(connection, programme_info, earlier, request,
                                     idempotency_key)
            rate = settings_on(connection, programme_info.id).fen_per_point
            rows = connection.execute(
                select(RedemptionRow.voucher_id, RedemptionRow.entry_seq,
                       RedemptionRow.value_points)
                .where(RedemptionRow.shop_id == shop_info.id,
                       RedemptionRow.settlement_seq.is_(None),
                       RedemptionRow.redeemed_at >= low, RedemptionRow.redeemed_at < high)
                .order_by(RedemptionRow.entry_seq)
            ).all()
        if not rows:
            raise NothingToSettle(
                f"shop {shop} has no unsettled redemption from {start} to {end}", shop=shop,
                period_start=start.isoformat(), period_end=end.isoformat())
        voucher_ids = [row.voucher_id for row in rows]
        total_points = sum(row.value_points for row in rows)
        row_values = {
            "programme_id": programme_info.id, "shop_id": shop_info.id,
            "period_start": start.isoformat(), "period_end": end.isoformat(),
            "redemption_count": len(rows), "total_points": total_points,
            "fen_per_point": rate, "total_fen": total_points * rate,
            "payment_reference": payment_reference, "actor": actor,
            "idempotency_key": idempotency_key,
        }
        draft = Draft(
            kind="settlement",
            postings=[Posting(shop_account(shop), -total_points), Posting(SETTLED, total_points)],
            actor=actor,
            memo=f"settlement of {shop} for {start} to {end}: {total_points} points, "
                 f"{_yuan(total_points * rate)} yuan, reference {payment_reference}",
            metadata={
                "fen_per_point": rate, "first_seq": rows[0].entry_seq,
                "last_seq": rows[-1].entry_seq, "payment_reference": payment_reference,
                "period_end": end.isoformat(), "period_start": start.isoformat(),
                "redemptions": len(rows), "shop": shop, "total_fen": total_points * rate,
            },
            idempotency_key=SETTLE_KEY_PREFIX + idempotency_key,
        )
        try:
            appended = append_batch(
                engine, programme, [draft],
                guard=_settle_guard(shop_account(shop), voucher_ids, total_points),
                after_write=_record(row_values, voucher_ids))[0]
        except _Raced:
            continue
        except errors.IdempotencyConflict:
            with read_transaction(engine) as connection:
                earlier = connection.execute(
                    select(Settlement.entry_seq)
                    .where(Settlement.programme_id == programme_info.id,
                           Settlement.idempotency_key == idempotency_key)
                ).scalar_one_or_none()
                if earlier is None:
                    raise
                return _same_request(connection, programme_info, earlier, request,
                                     idempotency_key)
        with read_transaction(engine) as connection:
            return _settlements(connection, programme_info, shop_info,
                                [appended.entry.seq])[0]
    raise errors.StorageBusy(f"redemptions of {shop} kept being settled meanwhile; retry")


def _settle_guard(account: str, voucher_ids: list[str], total_points: int):
    def guard(connection: Connection, programme_info: ProgrammeInfo,
              prepared: Sequence[Prepared]) -> None:
        unsettled = 0
        for start in range(0, len(voucher_ids), _CHUNK):
            unsettled += connection.execute(
                select(func.count()).select_from(RedemptionRow)
                .where(RedemptionRow.voucher_id.in_(voucher_ids[start : start + _CHUNK]),
                       RedemptionRow.settlement_seq.is_(None))
            ).scalar_one()
        if unsettled != len(voucher_ids):
            raise _Raced()
        balance_points = balance_on(connection, programme_info.id, account).balance_points
        if balance_points < total_points:
            raise errors.IntegrityViolation(
                f"{account} holds {balance_points} points, less than the {total_points} its "
                "unsettled redemptions credited")

    return guard


def _record(row_values: dict[str, Any], voucher_ids: list[str]):
    def record(connection: Connection, programme_info: ProgrammeInfo,
               entries: Sequence[Entry]) -> None:
        entry = entries[0]
        connection.execute(insert(Settlement).values(**row_values, entry_seq=entry.seq,
                                                     settled_at=entry.recorded_at))
        marked = 0
        for start in range(0, len(voucher_ids), _CHUNK):
            marked += connection.execute(
                update(RedemptionRow)
                .where(RedemptionRow.voucher_id.in_(voucher_ids[start : start + _CHUNK]),
                       RedemptionRow.settlement_seq.is_(None))
                .values(settlement_seq=entry.seq)
            ).rowcount
        if marked != len(voucher_ids):
            raise errors.IntegrityViolation(
                f"{len(voucher_ids) - marked} redemptions were already settled; nothing written")

    return record


def _same_request(connection: Connection, programme: ProgrammeInfo, seq: int,
                  request: tuple, key: str) -> SettlementInfo:
    shop_code = connection.execute(
        select(Shop.code).join(Settlement, Settlement.shop_id == Shop.id)
        .where(Settlement.programme_id == programme.id, Settlement.entry_seq == seq)
    ).scalar_one()
    earlier = _settlements_by_seq(connection, programme, shop_code, [seq])[0]
    if (earlier.shop, earlier.period_start, earlier.period_end,
            earlier.payment_reference) != request:
        raise errors.IdempotencyConflict(
            f"idempotency key {key!r} was used for settlement {seq}, another request",
            idempotency_key=key, seq=seq)
    return SettlementInfo(**{**asdict(earlier), "created": False})


def _settlements(connection: Connection, programme: ProgrammeInfo, shop: ShopInfo,
                 seqs: list[int]) -> list[SettlementInfo]:
    return _settlements_by_seq(connection, programme, shop.code, seqs)


def _settlements_by_seq(connection: Connection, programme: ProgrammeInfo, shop_code: str,
                        seqs: list[int]) -> list[SettlementInfo]:
    found = []
    for start in range(0, len(seqs), _CHUNK):
        rows = connection.execute(
            select(Settlement).where(Settlement.programme_id == programme.id,
                                     Settlement.entry_seq.in_(seqs[start : start + _CHUNK]))
            .order_by(Settlement.entry_seq)
        ).all()
        found.extend(
            SettlementInfo(programme.code, shop_code, row.entry_seq, row.period_start,
                           row.period_end, row.redemption_count, row.total_points,
                           row.fen_per_point, row.total_fen, row.payment_reference, row.actor,
                           row.settled_at)
            for row in rows)
    return found


def _period(programme: ProgrammeInfo, start: date, end: date) -> tuple[str, str]:
    """The period as a half-open range of recorded_at texts [start 00:00, end + 1 day 00:00)."""
    if not (isinstance(start, date) and isinstance(end, date)) or isinstance(
            start, datetime) or isinstance(end, datetime):
        raise errors.InvalidEntry("a period is two dates", field="start")
    if end < start or (end - start).days >= MAX_PERIOD_DAYS:
        raise errors.InvalidEntry(
            f"the period must end on or after its start and span at most {MAX_PERIOD_DAYS} days",
            field="end")
    low = datetime.combine(start, time(), programme.zone).astimezone(UTC)
    high = datetime.combine(end + timedelta(days=1), time(), programme.zone).astimezone(UTC)
    return format_timestamp(low), format_timestamp(high)


def _check_text(value: str, name: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise errors.InvalidEntry(f"{name} must be 1-{limit} characters, without NUL",
                                  field=name)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# -- exports -------------------------------------------------------------------------------

CSV_COLUMNS = (
    ("voucher", "券号 voucher"),
    ("short_code", "短码 short code"),
    ("entry_seq", "分录号 entry seq"),
    ("redeemed_at_local", "核销时间 redeemed at"),
    ("item", "商品 item"),
    ("value_points", "积分 points"),
    ("money_yuan", "金额(元) yuan"),
    ("settlement_seq", "结算分录号 settlement seq"),
)


def statement_csv(found: Statement) -> bytes:
    """The statement as CSV: UTF-8 with a byte-order mark, one line per redemption, then
    a total line. Excel opens it with Chinese intact."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f"商户 shop: {found.shop} {found.shop_name}",
                     f"期间 period: {found.period_start} – {found.period_end} "
                     f"({found.time_zone})",
                     f"汇率 rate: {found.fen_per_point} 分/积分 fen per point"])
    writer.writerow([title for _, title in CSV_COLUMNS])
    for line in found.lines:
        writer.writerow([line.voucher_id, display(line.short_code), line.entry_seq,
                         line.redeemed_at_local, line.item or "", line.value_points,
                         _yuan(line.money_fen),
                         "" if line.settlement_seq is None else line.settlement_seq])
    writer.writerow(["合计 total", "", "", "", "", found.total_points, _yuan(found.total_fen),
                     ""])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def statement_json(found: Statement) -> dict[str, Any]:
    """The statement as plain JSON-ready data (money in fen, integers throughout)."""
    return json.loads(json.dumps(asdict(found), ensure_ascii=False))
