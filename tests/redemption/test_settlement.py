"""Settlement: statements that tie back to the chain, paying each redemption exactly once.

Every test runs on SQLite and PostgreSQL, in a programme of its own.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from ledger import errors
from ledger.accounts import SETTLED
from ledger.chain import get_entry, head
from redemption.errors import NothingToSettle
from redemption.redemptions import redeem
from redemption.settings import set_settings
from redemption.settlement import settle, statement, statement_csv, statement_json
from redemption.vouchers import issue_voucher
from tests.ledger.conftest import SHANGHAI
from tests.redemption.conftest import CASHIER, ORGANISER


def today() -> date:
    return datetime.now(UTC).astimezone(SHANGHAI).date()


def redeem_points(market, shop: str, *points: int) -> list:
    redemptions = []
    for value in points:
        voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                                points=value)
        redemptions.append(redeem(market.engine, market.code, shop, voucher.display_code,
                                  actor=CASHIER))
    return redemptions


def test_a_statement_lists_each_redemption_with_its_entry_and_the_money(market):
    set_settings(market.engine, market.code, fen_per_point=12)
    at_rice = redeem_points(market, "rice", 30, 45)
    redeem_points(market, "oil", 99)

    found = statement(market.engine, market.code, "rice", today(), today())

    assert [(line.voucher_id, line.entry_seq, line.value_points, line.money_fen)
            for line in found.lines] == [
        (redemption.voucher_id, redemption.entry_seq, redemption.value_points,
         redemption.value_points * 12) for redemption in at_rice]
    assert (found.total_points, found.total_fen, found.unsettled_points) == (75, 900, 75)
    assert (found.shop_name, found.fen_per_point, found.time_zone) == (
        "王家米店", 12, "Asia/Shanghai")
    for line in found.lines:
        entry = get_entry(market.engine, market.code, line.entry_seq)
        assert entry.kind == "voucher_redeem" and entry.metadata["voucher"] == line.voucher_id
        assert entry.recorded_at == line.redeemed_at
    yesterday = today() - timedelta(days=1)
    assert statement(market.engine, market.code, "rice", yesterday, yesterday).lines == []


def test_settling_moves_the_shops_points_to_settled_once_and_records_the_reference(market):
    redeem_points(market, "rice", 30, 45)
    period = (today() - timedelta(days=6), today())

    settled = settle(market.engine, market.code, "rice", *period,
                     payment_reference="银行转账 2026-11-20 #0042", actor="admin:town",
                     idempotency_key="pay-rice-w47")
    size_after = head(market.engine, market.code).size
    again = settle(market.engine, market.code, "rice", *period,
                   payment_reference="银行转账 2026-11-20 #0042", actor="admin:town",
                   idempotency_key="pay-rice-w47")

    assert (settled.created, again.created) == (True, False)
    assert again.entry_seq == settled.entry_seq
    assert head(market.engine, market.code).size == size_after
    assert (settled.redemption_count, settled.total_points, settled.fen_per_point,
            settled.total_fen) == (2, 75, 10, 750)
    entry = get_entry(market.engine, market.code, settled.entry_seq)
    assert entry.kind == "settlement"
    assert {(p.account, p.points) for p in entry.postings} == {("shop:rice", -75), (SETTLED, 75)}
    assert entry.metadata["payment_reference"] == "银行转账 2026-11-20 #0042"
    assert market.balance("shop:rice") == 0 and market.balance(SETTLED) == 75

    found = statement(market.engine, market.code, "rice", *period)
    assert {line.settlement_seq for line in found.lines} == {settled.entry_seq}
    assert found.unsettled_points == 0 and found.total_points == 75
    assert [s.entry_seq for s in found.settlements] == [settled.entry_seq]
    with pytest.raises(NothingToSettle):
        settle(market.engine, market.code, "rice", *period, payment_reference="again",
               actor="admin:town", idempotency_key="pay-rice-w47-bis")
    with pytest.raises(errors.IdempotencyConflict):
        settle(market.engine, market.code, "rice", *period, payment_reference="other ref",
               actor="admin:town", idempotency_key="pay-rice-w47")
    market.assert_books_hold()


def test_a_later_settlement_pays_only_what_came_after(market):
    period = (today(), today())
    redeem_points(market, "rice", 10)
    first = settle(market.engine, market.code, "rice", *period, payment_reference="r1",
                   actor="admin:town", idempotency_key="k1")
    late = redeem_points(market, "rice", 7)

    second = settle(market.engine, market.code, "rice", *period, payment_reference="r2",
                    actor="admin:town", idempotency_key="k2")

    assert (first.total_points, second.total_points, second.redemption_count) == (10, 7, 1)
    found = statement(market.engine, market.code, "rice", *period)
    assert {line.voucher_id: line.settlement_seq for line in found.lines}[
        late[0].voucher_id] == second.entry_seq
    assert market.balance(SETTLED) == 17 and market.balance("shop:rice") == 0


def test_settlements_racing_for_one_period_pay_each_redemption_once(market):
    """Four settlements with four keys, started together: one pays, the others find that
    nothing is left (the guard re-checks under the chain lock and the marking is a
    conditional UPDATE whose row count must match)."""
    redeem_points(market, "rice", 10, 20, 30)
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[object] = [None] * racers

    def pay(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[index] = settle(market.engine, market.code, "rice", today(), today(),
                                     payment_reference=f"transfer {index}", actor="admin:town",
                                     idempotency_key=f"race-{index}")
        except errors.LedgerError as refusal:
            outcomes[index] = refusal.code

    threads = [threading.Thread(target=pay, args=(index,)) for index in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    paid = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert len(paid) == 1, outcomes
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["nothing_to_settle"] * 3
    assert paid[0].total_points == 60
    assert market.balance(SETTLED) == 60 and market.balance("shop:rice") == 0
    market.assert_books_hold()


def test_the_csv_opens_in_excel_with_chinese_intact_and_the_json_ties_to_entries(market):
    redemptions = redeem_points(market, "rice", 30)
    found = statement(market.engine, market.code, "rice", today(), today())

    data = statement_csv(found)
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel looks for
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert "王家米店" in rows[0][0]
    assert rows[1][0] == "券号 voucher"
    assert rows[2][0] == redemptions[0].voucher_id
    assert rows[2][2] == str(redemptions[0].entry_seq)
    assert rows[2][5:7] == ["30", "3.00"]
    assert rows[-1][0] == "合计 total" and rows[-1][5:7] == ["30", "3.00"]

    exported = statement_json(found)
    assert json.loads(json.dumps(exported, ensure_ascii=False)) == exported
    assert exported["shop_name"] == "王家米店"
    assert [line["entry_seq"] for line in exported["lines"]] == [redemptions[0].entry_seq]
    assert exported["total_fen"] == 300


def test_a_period_must_be_dates_in_order_and_not_too_long(market):
    with pytest.raises(errors.InvalidEntry):
        statement(market.engine, market.code, "rice", today(), today() - timedelta(days=1))
    with pytest.raises(errors.InvalidEntry):
        statement(market.engine, market.code, "rice", today() - timedelta(days=400), today())
    with pytest.raises(errors.InvalidEntry):
        settle(market.engine, market.code, "rice", today(), today(), payment_reference=" ",
               actor="admin:town", idempotency_key="k")


def test_the_rate_and_validity_are_positive_integers_within_limits(market):
    for wrong in ({"fen_per_point": 0}, {"fen_per_point": 1.5},
                  {"voucher_validity_days": -1}, {"voucher_validity_days": 10_000}):
        with pytest.raises(errors.InvalidEntry):
            set_settings(market.engine, market.code, **wrong)
    changed = set_settings(market.engine, market.code, fen_per_point=25)
    assert (changed.fen_per_point, changed.voucher_validity_days) == (25, 30)
