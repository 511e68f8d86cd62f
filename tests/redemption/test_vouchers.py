"""Issuing, cancelling and expiring vouchers: balanced entries, stock, lots, idempotency.

Every test runs on SQLite and PostgreSQL, in a programme of its own.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import update

from ledger import errors
from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append, get_entry, head
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.expiry import expire, member_lots, set_expiry_policy
from ledger.statements import balance_of
from redemption import catalog
from redemption.errors import (
    AlreadyRedeemed,
    InsufficientBalance,
    OutOfStock,
    UnknownShop,
    VoucherExpired,
)
from redemption.models import Voucher as VoucherRow
from redemption.redemptions import redeem
from redemption.settings import set_settings
from redemption.shops import shops_serving
from redemption.vouchers import (
    HELD,
    cancel_voucher,
    expire_vouchers,
    get_voucher,
    issue_voucher,
    list_vouchers,
)
from tests.conftest import make_village
from tests.ledger.conftest import SHANGHAI
from tests.redemption.conftest import CASHIER, ORGANISER, STARTING_POINTS


def issue_expiring_soon(market, seconds: float = 1.0, **fields):
    """A voucher that expires `seconds` from now (expiry must be in the future at issue)."""
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    return issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                         expires_at=expires_at, **fields), expires_at


def wait_until(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now(UTC)).total_seconds() + 0.05, 0))


def test_issuing_moves_points_from_the_member_to_held_and_records_the_lots(market):
    size_before = head(market.engine, market.code).size

    voucher = issue_voucher(market.engine, market.code, market.member(0), actor="member:m0",
                            points=120)

    assert (voucher.status, voucher.value_points, voucher.member) == ("issued", 120, "m0")
    assert market.member_balance(0) == STARTING_POINTS - 120
    assert market.balance(HELD) == 120
    entry = get_entry(market.engine, market.code, voucher.issue_seq)
    assert voucher.issue_seq == size_before
    assert entry.kind == "voucher_issue"
    assert {(p.account, p.points) for p in entry.postings} == {("member:m0", -120),
                                                               (HELD, 120)}
    assert entry.metadata["voucher"] == voucher.id
    award_seq = 0  # make_market awards m0 first
    assert entry.metadata["lots"] == [[award_seq, 120]]
    assert voucher.lots == ((award_seq, 120),)
    assert len(voucher.id) == 26 and voucher.id.isalnum()
    market.assert_books_hold()


def test_the_default_expiry_is_the_end_of_the_day_validity_days_ahead(market):
    set_settings(market.engine, market.code, voucher_validity_days=7)
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            points=5)
    expires_local = parse_timestamp(voucher.expires_at).astimezone(SHANGHAI)
    issued_on = parse_timestamp(voucher.issued_at).astimezone(SHANGHAI).date()
    assert (expires_local.hour, expires_local.minute, expires_local.second) == (0, 0, 0)
    assert expires_local.date() == issued_on + timedelta(days=8)  # valid through day 7


def test_a_member_cannot_issue_past_zero_and_nothing_is_written(market):
    size_before = head(market.engine, market.code).size

    with pytest.raises(InsufficientBalance) as refused:
        issue_voucher(market.engine, market.code, market.member(1), actor=ORGANISER,
                      points=STARTING_POINTS + 1)

    assert refused.value.details == {"member": "m1", "balance_points": STARTING_POINTS,
                                     "points": STARTING_POINTS + 1}
    assert head(market.engine, market.code).size == size_before
    assert list_vouchers(market.engine, market.code, member="m1") == []
    exact = issue_voucher(market.engine, market.code, market.member(1), actor=ORGANISER,
                          points=STARTING_POINTS)
    assert exact.status == "issued" and market.member_balance(1) == 0
    with pytest.raises(InsufficientBalance):
        issue_voucher(market.engine, market.code, market.member(1), actor=ORGANISER, points=1)
    market.assert_books_hold()


def test_the_same_idempotency_key_gives_the_same_voucher_once(market):
    first = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                          points=40, shops=["rice"], idempotency_key="app-42")
    size_after_first = head(market.engine, market.code).size

    again = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                          points=40, shops=["rice"], idempotency_key="app-42")

    assert again == first
    assert head(market.engine, market.code).size == size_after_first
    assert market.member_balance(0) == STARTING_POINTS - 40
    with pytest.raises(errors.IdempotencyConflict):
        issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                      points=41, shops=["rice"], idempotency_key="app-42")


def test_points_and_item_are_exclusive_and_shops_must_exist(market):
    with pytest.raises(errors.InvalidEntry):
        issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER)
    catalog.create_item(market.engine, market.code, "soap", "肥皂", kind="goods",
                        price_points=8, stock=3)
    with pytest.raises(errors.InvalidEntry):
        issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER, points=8,
                      item="soap")
    with pytest.raises(UnknownShop):
        issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER, points=8,
                      shops=["nowhere"])
    with pytest.raises(errors.InvalidEntry):
        issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER, points=8,
                      expires_at=datetime.now(UTC) - timedelta(seconds=1))


def test_a_goods_voucher_costs_the_price_and_takes_one_unit_until_none_is_left(market):
    catalog.create_item(market.engine, market.code, "rice-5kg", "东北大米 5kg", kind="goods",
                        price_points=150, stock=2)

    first = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                          item="rice-5kg")
    issue_voucher(market.engine, market.code, market.member(1), actor=ORGANISER,
                  item="rice-5kg")

    assert (first.item, first.value_points) == ("rice-5kg", 150)
    assert catalog.get_item(market.engine, market.code, "rice-5kg").stock == 0
    size_before = head(market.engine, market.code).size
    with pytest.raises(OutOfStock):
        issue_voucher(market.engine, market.code, market.member(2), actor=ORGANISER,
                      item="rice-5kg")
    assert head(market.engine, market.code).size == size_before
    assert market.member_balance(2) == STARTING_POINTS
    assert catalog.restock(market.engine, market.code, "rice-5kg", 3).stock == 3
    market.assert_books_hold()


def test_a_cash_off_item_has_no_stock_to_take(market):
    catalog.create_item(market.engine, market.code, "five-off", "抵扣 5 元", kind="cash_off",
                        price_points=50, value_fen=500)
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            item="five-off")
    assert voucher.value_points == 50
    assert catalog.get_item(market.engine, market.code, "five-off").stock is None
    with pytest.raises(errors.InvalidEntry):
        catalog.restock(market.engine, market.code, "five-off", 1)


def test_cancelling_returns_the_points_and_the_unit_once(market):
    catalog.create_item(market.engine, market.code, "oil", "花生油", kind="goods",
                        price_points=90, stock=1)
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            item="oil")

    cancelled = cancel_voucher(market.engine, market.code, voucher.id, actor="member:m0")
    size_after_cancel = head(market.engine, market.code).size
    again = cancel_voucher(market.engine, market.code, voucher.id, actor="admin:town")

    assert cancelled.status == "cancelled" and again == cancelled
    assert head(market.engine, market.code).size == size_after_cancel
    entry = get_entry(market.engine, market.code, cancelled.closed_seq)
    assert entry.kind == "voucher_cancel"
    assert {(p.account, p.points) for p in entry.postings} == {(HELD, -90), ("member:m0", 90)}
    assert market.member_balance(0) == STARTING_POINTS
    assert market.balance(HELD) == 0
    assert catalog.get_item(market.engine, market.code, "oil").stock == 1
    with pytest.raises(errors.LedgerError) as refused:
        redeem(market.engine, market.code, "rice",
               cancelled.display_code, actor=CASHIER)
    assert refused.value.code == "cancelled"
    market.assert_books_hold()


def test_a_redeemed_voucher_cannot_be_cancelled_or_expired(market):
    voucher, expires_at = issue_expiring_soon(market, seconds=1.0, points=10)
    redeem(market.engine, market.code, "rice", voucher.display_code, actor=CASHIER)

    with pytest.raises(AlreadyRedeemed):
        cancel_voucher(market.engine, market.code, voucher.id, actor=ORGANISER)
    wait_until(expires_at)
    assert expire_vouchers(market.engine, market.code) == []
    assert get_voucher(market.engine, market.code, voucher.id).status == "redeemed"
    assert market.balance("shop:rice") == 10


def test_expiry_returns_points_and_stock_once_and_leaves_unexpired_vouchers(market):
    catalog.create_item(market.engine, market.code, "salt", "食盐", kind="goods",
                        price_points=5, stock=1)
    soon, expires_at = issue_expiring_soon(market, seconds=1.0, item="salt")
    later = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                          points=7)
    with pytest.raises(errors.InvalidEntry):
        expire_vouchers(market.engine, market.code, datetime.now(UTC) + timedelta(minutes=1))
    wait_until(expires_at)

    expired = expire_vouchers(market.engine, market.code)
    size_after = head(market.engine, market.code).size

    assert [voucher.id for voucher in expired] == [soon.id]
    assert expired[0].status == "expired"
    entry = get_entry(market.engine, market.code, expired[0].closed_seq)
    assert entry.kind == "voucher_expire" and entry.metadata["voucher"] == soon.id
    assert catalog.get_item(market.engine, market.code, "salt").stock == 1
    assert market.member_balance(0) == STARTING_POINTS - 7
    assert market.balance(HELD) == 7
    assert get_voucher(market.engine, market.code, later.id).status == "issued"
    assert expire_vouchers(market.engine, market.code) == []
    assert head(market.engine, market.code).size == size_after
    with pytest.raises(VoucherExpired):
        cancel_voucher(market.engine, market.code, soon.id, actor=ORGANISER)
    market.assert_books_hold()


def test_returned_points_keep_the_expiry_of_the_lots_they_came_from(engine):
    """Cancel after the lots' expiry: the points come back already due, and `expire` takes
    them; a cancel never gives points a fresh life."""
    village = make_village(engine)
    set_expiry_policy(engine, village.code, "months:1", "system:test")
    now = datetime.now(UTC)
    old_award = append(engine, village.code, kind="award",
                       postings=[Posting(village.account(0), 30), Posting(ISSUANCE, -30)],
                       actor=ORGANISER, occurred_at=now - timedelta(days=45)).entry
    recent_award = append(engine, village.code, kind="award",
                          postings=[Posting(village.account(0), 20), Posting(ISSUANCE, -20)],
                          actor=ORGANISER, occurred_at=now - timedelta(days=3)).entry
    voucher = issue_voucher(engine, village.code, "m0", actor=ORGANISER, points=40)
    assert voucher.lots == ((old_award.seq, 30), (recent_award.seq, 10))

    cancelled = cancel_voucher(engine, village.code, voucher.id, actor="member:m0")

    returns = [get_entry(engine, village.code, seq)
               for seq in range(cancelled.closed_seq, head(engine, village.code).size)]
    assert [(entry.kind, entry.occurred_at, entry.metadata["lots"]) for entry in returns] == [
        ("voucher_cancel", old_award.occurred_at, [[old_award.seq, 30]]),
        ("voucher_cancel", recent_award.occurred_at, [[recent_award.seq, 10]]),
    ]
    lots = {lot.seq: lot for lot in member_lots(engine, village.code, "m0")}
    original = {lot.seq: lot.expires_at for lot in member_lots(
        engine, village.code, "m0", as_of=parse_timestamp(voucher.issued_at))}
    assert lots[returns[0].seq].expires_at == original[old_award.seq]
    assert lots[returns[1].seq].expires_at == original[recent_award.seq]

    expired = expire(engine, village.code, now)
    assert sum(entry.postings[1].points for entry in expired) == 30
    assert balance_of(engine, village.code, "member:m0").balance_points == 20


def test_an_expired_voucher_row_is_refused_by_redeem_even_before_the_expiry_run(market):
    voucher, expires_at = issue_expiring_soon(market, seconds=1.0, points=12)
    wait_until(expires_at)
    with pytest.raises(VoucherExpired):
        redeem(market.engine, market.code, "rice", voucher.display_code, actor=CASHIER)
    assert get_voucher(market.engine, market.code, voucher.id).status == "issued"
    assert market.balance("shop:rice") == 0


def test_the_database_refuses_a_voucher_status_it_does_not_know(market):
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            points=3)
    with pytest.raises(Exception, match="vouchers_status_known|CHECK constraint"):
        with market.engine.begin() as connection:
            connection.execute(update(VoucherRow).where(VoucherRow.id == voucher.id)
                               .values(status="spent", expires_at=format_timestamp(
                                   datetime.now(UTC))))


def test_shops_serving_a_member_are_those_serving_a_unit_on_their_path(market):
    assert shops_serving(market.engine, market.code, market.member(0)) == ["rice"]


def race(*actions) -> list[str]:
    """Run `actions` in threads released together; each one's outcome: "done" or its code."""
    barrier = threading.Barrier(len(actions))
    outcomes = [""] * len(actions)

    def attempt(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            actions[index]()
            outcomes[index] = "done"
        except errors.LedgerError as refusal:
            outcomes[index] = refusal.code

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_a_cancel_racing_a_redemption_lets_exactly_one_of_them_happen(market):
    """Both move the voucher out of `issued` by a conditional UPDATE inside the chain lock:
    whichever commits first wins, the other is refused, and the points move once."""
    statuses = []
    for _ in range(10):
        voucher = issue_voucher(market.engine, market.code, market.member(2), actor=ORGANISER,
                                points=10)
        outcomes = race(
            partial(redeem, market.engine, market.code, "rice", voucher.display_code,
                    actor=CASHIER),
            partial(cancel_voucher, market.engine, market.code, voucher.id, actor="member:m2"),
        )
        status = get_voucher(market.engine, market.code, voucher.id).status
        assert (outcomes, status) in [(["done", "already_redeemed"], "redeemed"),
                                      (["cancelled", "done"], "cancelled")], outcomes
        statuses.append(status)
    redeemed = statuses.count("redeemed")
    assert market.balance("shop:rice") == 10 * redeemed
    assert market.member_balance(2) == STARTING_POINTS - 10 * redeemed
    assert market.balance(HELD) == 0
    market.assert_books_hold()


def test_catalog_items_need_the_fields_of_their_kind(market):
    for wrong in ({"kind": "goods", "price_points": 5},
                  {"kind": "goods", "price_points": 5, "stock": -1},
                  {"kind": "cash_off", "price_points": 5},
                  {"kind": "cash_off", "price_points": 5, "value_fen": 100, "stock": 1},
                  {"kind": "service", "price_points": 5, "stock": 1},
                  {"kind": "goods", "price_points": 0, "stock": 1}):
        with pytest.raises(errors.InvalidEntry):
            catalog.create_item(market.engine, market.code, "thing", "东西", **wrong)
    catalog.create_item(market.engine, market.code, "thing", "东西", kind="goods",
                        price_points=5, stock=0)
    with pytest.raises(errors.AlreadyExists):
        catalog.create_item(market.engine, market.code, "thing", "东西", kind="goods",
                            price_points=5, stock=0)
    assert [item.code for item in catalog.list_items(market.engine, market.code)] == ["thing"]
