"""Expiry policies, lots drawn soonest-expiring first, and the expiry command, on both databases.

Awards, deductions and spends are posted straight to the chain (no rules):
what is tested here is how lots replay from entries, whatever posted them.
After every step the chain verifies and every member's unspent lots add up
to the member's balance (or to nothing, for a member in debt).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from ledger import errors, expiry
from ledger.accounts import EXPIRED, ISSUANCE, PENALTY
from ledger.chain import Draft, Posting, append, append_batch, head, reverse
from ledger.expiry import (
    MAX_LOTS_PER_ENTRY,
    ExpiryPolicy,
    InvalidExpiryPolicy,
    draw_lots,
    expire,
    expiry_policy,
    member_lots,
    set_expiry_policy,
)
from ledger.models import Programme
from ledger.programmes import open_account
from ledger.statements import balance_of
from ledger.verify import verify_chain
from tests.conftest import make_village
from tests.ledger.conftest import SHANGHAI, shanghai

ADMIN = "system:test"
HOLD = "hold:vouchers"


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def award(village, member_index: int, points: int, occurred_at: datetime):
    return append(
        village.engine, village.code, kind="award",
        postings=[Posting(village.account(member_index), points), Posting(ISSUANCE, -points)],
        actor="organiser:test", occurred_at=occurred_at,
    ).entry


def deduct(village, member_index: int, points: int, occurred_at: datetime):
    return append(
        village.engine, village.code, kind="deduction",
        postings=[Posting(village.account(member_index), -points), Posting(PENALTY, points)],
        actor="organiser:test", occurred_at=occurred_at,
    ).entry


def spend(village, member_index: int, points: int, occurred_at: datetime):
    """A voucher issue: points leave the member for a hold account."""
    return append(
        village.engine, village.code, kind="voucher_issue",
        postings=[Posting(village.account(member_index), -points), Posting(HOLD, points)],
        actor="member:test", occurred_at=occurred_at,
    ).entry


def lots_of(village, member_index: int) -> dict[int, tuple[int, int]]:
    """Lot seq -> (points, remaining)."""
    return {lot.seq: (lot.points, lot.remaining)
            for lot in member_lots(village.engine, village.code, village.members[member_index])}


def balance(village, account: str) -> int:
    return balance_of(village.engine, village.code, account).balance_points


def score(village, member_index: int) -> int:
    return balance_of(village.engine, village.code, village.account(member_index)).score_points


def assert_consistent(village) -> None:
    """The chain verifies, and each member's unspent lots hold exactly the spendable balance."""
    verification = verify_chain(village.engine, village.code)
    assert verification.ok, verification.problem
    for index, member in enumerate(village.members):
        lots = member_lots(village.engine, village.code, member)
        assert sum(lot.remaining for lot in lots) == max(balance(village, village.account(index)),
                                                         0)


@pytest.fixture
def village(engine):
    made = make_village(engine)
    open_account(engine, made.code, HOLD, "hold")
    return made


def test_a_policy_change_is_an_admin_entry_and_updates_the_programme(village):
    assert expiry_policy(village.engine, village.code) == ExpiryPolicy("never")

    entry = set_expiry_policy(village.engine, village.code, "months:12", ADMIN)

    assert entry.kind == "admin"
    assert entry.postings == ()
    assert entry.actor == ADMIN
    assert entry.metadata == {"event": "expiry_policy", "policy": "months:12"}
    assert expiry_policy(village.engine, village.code) == ExpiryPolicy("months", 12)
    with village.engine.connect() as connection:
        stored = connection.execute(
            select(Programme.expiry_policy).where(Programme.code == village.code)
        ).scalar_one()
    assert stored == "months:12"
    # The same policy again changes nothing and writes nothing.
    size = head(village.engine, village.code).size
    assert set_expiry_policy(village.engine, village.code, "months:12", ADMIN) is None
    assert head(village.engine, village.code).size == size
    assert set_expiry_policy(village.engine, village.code, "years:2", ADMIN).seq == size
    assert expiry_policy(village.engine, village.code) == ExpiryPolicy("years", 2)
    assert_consistent(village)


@pytest.mark.parametrize("policy", [
    "", "always", "Never", "months", "months:", "months:0", "months:-1", "months:1.5",
    "months:01", " months:3", "months:3 ", "MONTHS:3", "days:30", "years:0", "years:101",
    "months:1201", None, 12,
])
def test_a_malformed_policy_is_refused_and_nothing_is_written(village, policy):
    size = head(village.engine, village.code).size

    with pytest.raises(InvalidExpiryPolicy) as refused:
        set_expiry_policy(village.engine, village.code, policy, ADMIN)

    assert refused.value.code == "invalid_expiry_policy"
    assert refused.value.details["policy"] == policy
    assert head(village.engine, village.code).size == size
    assert expiry_policy(village.engine, village.code) == ExpiryPolicy("never")


def test_the_longest_policies_allowed_are_accepted(village):
    set_expiry_policy(village.engine, village.code, "months:1200", ADMIN)
    set_expiry_policy(village.engine, village.code, "years:100", ADMIN)
    assert expiry_policy(village.engine, village.code) == ExpiryPolicy("years", 100)


def test_a_lot_keeps_the_policy_in_force_when_it_was_recorded(village):
    awarded_at = shanghai(2024, 3, 10)
    kept = award(village, 0, 10, awarded_at)
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    monthly = award(village, 0, 10, awarded_at)
    set_expiry_policy(village.engine, village.code, "years:1", ADMIN)
    yearly = award(village, 0, 10, awarded_at)
    set_expiry_policy(village.engine, village.code, "never", ADMIN)
    unlimited = award(village, 0, 10, awarded_at)

    expiries = {lot.seq: lot.expires_at
                for lot in member_lots(village.engine, village.code, "m0")}

    assert expiries == {
        kept.seq: None,
        monthly.seq: utc(shanghai(2024, 4, 10, 0)),
        yearly.seq: utc(shanghai(2025, 1, 1, 0)),
        unlimited.seq: None,
    }


@pytest.mark.parametrize(("policy", "awarded_at", "expires_at"), [
    ("months:1", shanghai(2025, 1, 31), shanghai(2025, 2, 28, 0)),
    ("months:1", shanghai(2024, 1, 31), shanghai(2024, 2, 29, 0)),
    ("months:1", shanghai(2025, 3, 31, 23, 30), shanghai(2025, 4, 30, 0)),
    ("months:1", shanghai(2025, 12, 15), shanghai(2026, 1, 15, 0)),
    # 00:30 on 1 February in Shanghai is still 31 January in UTC.
    ("months:1", shanghai(2025, 2, 1, 0, 30), shanghai(2025, 3, 1, 0)),
    ("months:12", shanghai(2024, 2, 29), shanghai(2025, 2, 28, 0)),
    ("months:14", shanghai(2024, 11, 30), shanghai(2026, 1, 30, 0)),
    ("years:1", shanghai(2024, 12, 31, 23, 59), shanghai(2025, 1, 1, 0)),
    # 00:01 on 1 January 2025 in Shanghai is still 2024 in UTC.
    ("years:1", shanghai(2025, 1, 1, 0, 1), shanghai(2026, 1, 1, 0)),
    ("years:2", shanghai(2024, 6, 1), shanghai(2026, 1, 1, 0)),
])
def test_expiry_moments_are_local_midnights(village, policy, awarded_at, expires_at):
    set_expiry_policy(village.engine, village.code, policy, ADMIN)
    lot_seq = award(village, 0, 10, awarded_at).seq

    [lot] = member_lots(village.engine, village.code, "m0")

    assert (lot.seq, lot.expires_at) == (lot_seq, utc(expires_at))
    assert lot.expires_at.astimezone(SHANGHAI).time().isoformat() == "00:00:00"


def test_a_lot_expires_at_its_moment_and_not_a_microsecond_before(village):
    set_expiry_policy(village.engine, village.code, "years:1", ADMIN)
    award(village, 0, 10, shanghai(2024, 12, 31, 23, 59))
    new_year = shanghai(2025, 1, 1, 0)

    assert expire(village.engine, village.code, new_year - timedelta(microseconds=1)) == []
    [entry] = expire(village.engine, village.code, new_year)

    assert entry.postings == (Posting("member:m0", -10), Posting(EXPIRED, 10))
    assert entry.occurred_at == "2024-12-31T16:00:00.000000Z"


def test_spending_draws_the_soonest_expiring_lots_first(village):
    set_expiry_policy(village.engine, village.code, "years:2", ADMIN)
    late = award(village, 0, 10, shanghai(2024, 3, 1))          # expires 2026-01-01
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    middle = award(village, 0, 5, shanghai(2024, 6, 1))         # expires 2024-07-01
    soon = award(village, 0, 7, shanghai(2024, 5, 15))          # expires 2024-06-15
    set_expiry_policy(village.engine, village.code, "never", ADMIN)
    lasting = award(village, 0, 4, shanghai(2024, 1, 1))        # never expires
    twin = award(village, 0, 3, shanghai(2024, 1, 1))           # never, recorded after

    assert draw_lots(village.engine, village.code, "m0", 7) == [(soon.seq, 7)]
    assert draw_lots(village.engine, village.code, "m0", 12) == [(soon.seq, 7), (middle.seq, 5)]
    assert draw_lots(village.engine, village.code, "m0", 26) == [
        (soon.seq, 7), (middle.seq, 5), (late.seq, 10), (lasting.seq, 4)]
    # Past the balance: every lot, and the rest is not covered by any.
    assert draw_lots(village.engine, village.code, "m0", 100) == [
        (soon.seq, 7), (middle.seq, 5), (late.seq, 10), (lasting.seq, 4), (twin.seq, 3)]

    spend(village, 0, 9, shanghai(2024, 6, 2))

    assert lots_of(village, 0) == {
        late.seq: (10, 10), middle.seq: (5, 3), soon.seq: (7, 0), lasting.seq: (4, 4),
        twin.seq: (3, 3)}
    assert draw_lots(village.engine, village.code, "m0", 4) == [(middle.seq, 3), (late.seq, 1)]
    assert_consistent(village)


def test_lots_expiring_together_are_drawn_in_the_order_they_were_recorded(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    evening = award(village, 0, 3, shanghai(2024, 5, 15, 18))   # both expire 2024-06-15
    morning = award(village, 0, 3, shanghai(2024, 5, 15, 8))

    assert draw_lots(village.engine, village.code, "m0", 4) == [(evening.seq, 3), (morning.seq, 1)]


def test_drawing_is_refused_for_an_unknown_member_or_a_bad_amount(village):
    with pytest.raises(errors.UnknownMember):
        draw_lots(village.engine, village.code, "nobody", 5)
    with pytest.raises(errors.UnknownMember):
        member_lots(village.engine, village.code, "nobody")
    for points in (0, -3, 2.5):
        with pytest.raises(errors.InvalidAmount):
            draw_lots(village.engine, village.code, "m0", points)


def test_expire_posts_what_each_member_left_unspent_once(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    m0_january = award(village, 0, 10, shanghai(2024, 1, 10))
    m0_march = award(village, 0, 5, shanghai(2024, 3, 10))
    m1_january = award(village, 1, 8, shanghai(2024, 1, 12))
    spend(village, 1, 3, shanghai(2024, 1, 20))
    award(village, 2, 6, shanghai(2024, 1, 15))
    spend(village, 2, 6, shanghai(2024, 1, 20))               # m2 spent everything
    m3_march = award(village, 3, 4, shanghai(2024, 3, 20))
    assert_consistent(village)

    posted = expire(village.engine, village.code, date(2024, 2, 15), actor="system:cron")

    by_member = {entry.postings[0].account: entry for entry in posted}
    assert set(by_member) == {"member:m0", "member:m1"}
    m0_entry, m1_entry = by_member["member:m0"], by_member["member:m1"]
    assert m0_entry.kind == "expiry"
    assert m0_entry.actor == "system:cron"
    assert m0_entry.postings == (Posting("member:m0", -10), Posting(EXPIRED, 10))
    assert m0_entry.metadata == {"as_of": "2024-02-14T16:00:00.000000Z",
                                 "lots": [[m0_january.seq, 10]]}
    assert m0_entry.occurred_at == "2024-02-09T16:00:00.000000Z"   # 2024-02-10 00:00 Shanghai
    assert m0_entry.idempotency_key == f"expiry:m0:{m0_march.seq}:0:2024-02-14T16:00:00.000000Z"
    assert m1_entry.postings == (Posting("member:m1", -5), Posting(EXPIRED, 5))
    assert m1_entry.metadata["lots"] == [[m1_january.seq, 5]]
    assert [balance(village, village.account(index)) for index in range(4)] == [5, 0, 0, 4]
    assert balance(village, EXPIRED) == 15
    assert [score(village, index) for index in range(4)] == [15, 8, 6, 4]
    assert_consistent(village)

    size = head(village.engine, village.code).size
    assert expire(village.engine, village.code, date(2024, 2, 15)) == []
    assert expire(village.engine, village.code, date(2024, 2, 20)) == []
    assert head(village.engine, village.code).size == size

    later = expire(village.engine, village.code, date(2024, 4, 30))

    assert sorted((entry.postings[0].account, entry.metadata["lots"]) for entry in later) == [
        ("member:m0", [[m0_march.seq, 5]]), ("member:m3", [[m3_march.seq, 4]])]
    assert balance(village, EXPIRED) == 24
    assert [score(village, index) for index in range(4)] == [15, 8, 6, 4]
    assert expire(village.engine, village.code, date(2024, 4, 30)) == []
    assert_consistent(village)


def test_one_entry_expires_all_of_a_members_lots_dated_when_the_last_expired(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    tenth = award(village, 0, 4, shanghai(2024, 1, 10))
    first = award(village, 0, 6, shanghai(2024, 1, 1))

    [entry] = expire(village.engine, village.code, date(2024, 2, 15))

    assert entry.postings == (Posting("member:m0", -10), Posting(EXPIRED, 10))
    assert entry.metadata["lots"] == [[first.seq, 6], [tenth.seq, 4]]
    assert entry.occurred_at == utc(shanghai(2024, 2, 10, 0)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert_consistent(village)


def test_a_programme_whose_points_never_expire_expires_nothing(village):
    award(village, 0, 10, shanghai(2020, 1, 1))
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    set_expiry_policy(village.engine, village.code, "never", ADMIN)
    award(village, 0, 10, shanghai(2020, 1, 1))

    assert expire(village.engine, village.code, date.today()) == []
    assert balance(village, "member:m0") == 20


def test_a_member_in_debt_has_nothing_to_expire_until_later_lots_pay_it_off(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    first = award(village, 0, 10, shanghai(2024, 1, 1))
    deduct(village, 0, 15, shanghai(2024, 1, 10))
    assert balance(village, "member:m0") == -5
    assert lots_of(village, 0) == {first.seq: (10, 0)}

    assert expire(village.engine, village.code, date(2024, 2, 15)) == []

    swallowed = award(village, 0, 2, shanghai(2024, 2, 20))      # all of it pays debt
    second = award(village, 0, 8, shanghai(2024, 3, 1))
    assert lots_of(village, 0) == {first.seq: (10, 0), swallowed.seq: (2, 0), second.seq: (8, 5)}
    [entry] = expire(village.engine, village.code, date(2024, 4, 15))
    assert entry.postings == (Posting("member:m0", -5), Posting(EXPIRED, 5))
    assert balance(village, "member:m0") == 0
    assert score(village, 0) == 5                          # 10 - 15 + 2 + 8; expiry is no penalty
    assert_consistent(village)


def test_reversing_an_award_takes_its_own_lot_first(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    march = award(village, 0, 10, shanghai(2024, 3, 1))

    reverse(village.engine, village.code, march.seq, actor=ADMIN, memo="awarded twice")

    assert lots_of(village, 0) == {january.seq: (10, 10), march.seq: (10, 0)}
    [entry] = expire(village.engine, village.code, date(2024, 2, 15))
    assert entry.metadata["lots"] == [[january.seq, 10]]
    assert_consistent(village)


def test_reversing_a_partly_spent_award_draws_other_lots_then_runs_into_debt(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 1, 10, shanghai(2024, 1, 1))
    march = award(village, 1, 10, shanghai(2024, 3, 1))
    spend(village, 1, 15, shanghai(2024, 3, 2))                # january 10, march 5
    assert lots_of(village, 1) == {january.seq: (10, 0), march.seq: (10, 5)}

    reverse(village.engine, village.code, january.seq, actor=ADMIN, memo="not earned")

    assert lots_of(village, 1) == {january.seq: (10, 0), march.seq: (10, 0)}
    assert balance(village, "member:m1") == -5
    assert expire(village.engine, village.code, date(2024, 5, 1)) == []
    assert_consistent(village)


def test_reversing_a_debit_gives_the_points_back_to_the_lots_it_drew(village):
    """Voucher entries are undone by their own services (reverse() refuses them), so the
    reversed debit here is a deduction, which draws lots the same way a spend does."""
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    march = award(village, 0, 10, shanghai(2024, 3, 1))
    debit = deduct(village, 0, 12, shanghai(2024, 1, 5))
    assert lots_of(village, 0) == {january.seq: (10, 0), march.seq: (10, 8)}

    reverse(village.engine, village.code, debit.seq, actor=ADMIN, memo="wrong person")

    assert lots_of(village, 0) == {january.seq: (10, 10), march.seq: (10, 10)}
    [entry] = expire(village.engine, village.code, date(2024, 2, 15))
    assert entry.metadata["lots"] == [[january.seq, 10]]
    assert_consistent(village)


def test_reversing_a_deduction_first_pays_off_debt(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    deduction = deduct(village, 0, 6, shanghai(2024, 1, 2))     # january 4 left
    deduct(village, 0, 9, shanghai(2024, 1, 3))                 # january 0, debt 5

    reverse(village.engine, village.code, deduction.seq, actor=ADMIN, memo="wrong person")

    # 6 back: 5 pay the debt, 1 returns to the lot the deduction drew.
    assert balance(village, "member:m0") == 1
    assert lots_of(village, 0) == {january.seq: (10, 1)}
    assert_consistent(village)


def test_a_spend_made_after_the_expiry_date_but_before_the_expiry_run_draws_the_lot(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    march = award(village, 0, 10, shanghai(2024, 3, 1))
    spend(village, 0, 4, shanghai(2024, 2, 20))                 # january expired on 02-01

    [entry] = expire(village.engine, village.code, date(2024, 2, 21))

    assert entry.metadata["lots"] == [[january.seq, 6]]
    assert lots_of(village, 0) == {january.seq: (10, 0), march.seq: (10, 10)}
    assert_consistent(village)


def test_points_given_back_by_reversing_an_expiry_do_not_lapse_again_at_once(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    [expired] = expire(village.engine, village.code, date(2024, 2, 15))

    restored = reverse(village.engine, village.code, expired.seq, actor=ADMIN,
                       memo="grace for a hospital stay",
                       occurred_at=shanghai(2024, 2, 20)).entry

    assert lots_of(village, 0) == {january.seq: (10, 0), restored.seq: (10, 10)}
    assert balance(village, "member:m0") == 10
    assert expire(village.engine, village.code, date(2024, 3, 19)) == []
    [again] = expire(village.engine, village.code, date(2024, 3, 20))
    assert again.metadata["lots"] == [[restored.seq, 10]]
    assert_consistent(village)


def test_lots_as_they_stood_before_an_expiry_run(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    before_run = datetime.now(UTC)
    expire(village.engine, village.code, date(2024, 2, 15))

    [then] = member_lots(village.engine, village.code, "m0", as_of=before_run)
    [now] = member_lots(village.engine, village.code, "m0")

    assert (then.seq, then.remaining, now.seq, now.remaining) == (january.seq, 10, january.seq, 0)
    with pytest.raises(errors.InvalidEntry):
        member_lots(village.engine, village.code, "m0", as_of=datetime(2024, 1, 1))


def test_expire_refuses_a_moment_in_the_future_or_without_a_time_zone(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    award(village, 0, 10, shanghai(2024, 1, 1))
    size = head(village.engine, village.code).size

    with pytest.raises(errors.InvalidEntry) as future:
        expire(village.engine, village.code, datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(errors.InvalidEntry) as naive:
        expire(village.engine, village.code, datetime(2024, 3, 1))

    assert future.value.details["field"] == naive.value.details["field"] == "as_of"
    assert head(village.engine, village.code).size == size


def test_a_member_with_many_expired_lots_gets_several_expiry_entries(village):
    set_expiry_policy(village.engine, village.code, "years:1", ADMIN)
    lot_count = MAX_LOTS_PER_ENTRY + 7
    drafts = [
        Draft("award", [Posting("member:m0", 2), Posting(ISSUANCE, -2)], "organiser:test",
              occurred_at=shanghai(2024, 1, 1) + timedelta(minutes=index))
        for index in range(lot_count)
    ]
    append_batch(village.engine, village.code, drafts)

    posted = expire(village.engine, village.code, date(2025, 1, 1))

    assert [len(entry.metadata["lots"]) for entry in posted] == [MAX_LOTS_PER_ENTRY, 7]
    assert [entry.postings[0].points for entry in posted] == [-2 * MAX_LOTS_PER_ENTRY, -14]
    assert balance(village, "member:m0") == 0
    assert expire(village.engine, village.code, date(2025, 1, 1)) == []
    assert_consistent(village)


def test_an_entry_landing_between_the_replay_and_the_post_is_counted(village, monkeypatch):
    """A spend posted after expire read the lots, before it posted: expire replays again."""
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    january = award(village, 0, 10, shanghai(2024, 1, 1))
    march = award(village, 0, 10, shanghai(2024, 3, 1))
    other = award(village, 1, 7, shanghai(2024, 1, 1))
    real_append_batch = expiry.append_batch
    calls = []

    def spend_first(*arguments, **keywords):
        if not calls:
            spend(village, 0, 4, shanghai(2024, 2, 20))
        calls.append(arguments[2])
        return real_append_batch(*arguments, **keywords)

    monkeypatch.setattr(expiry, "append_batch", spend_first)

    posted = expire(village.engine, village.code, date(2024, 2, 21))

    # The first batch posts m1 and leaves m0 out; the second posts m0 as replayed anew.
    assert [[draft.postings[0].account for draft in drafts] for drafts in calls] == [
        ["member:m0", "member:m1"], ["member:m0"]]
    assert sorted((entry.postings[0].account, entry.metadata["lots"]) for entry in posted) == [
        ("member:m0", [[january.seq, 6]]), ("member:m1", [[other.seq, 7]])]
    assert lots_of(village, 0) == {january.seq: (10, 0), march.seq: (10, 10)}
    assert balance(village, "member:m0") == 10
    assert_consistent(village)


def test_two_expiry_runs_at_once_expire_each_point_once(village):
    set_expiry_policy(village.engine, village.code, "months:1", ADMIN)
    for index in range(4):
        award(village, index, 10 + index, shanghai(2024, 1, 1))
    start = threading.Barrier(2)
    results: list[list] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(expire(village.engine, village.code, date(2024, 3, 1)))
        except BaseException as error:  # reported below, not swallowed
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert sorted(len(posted) for posted in results) == [0, 4]
    assert balance(village, EXPIRED) == 10 + 11 + 12 + 13
    assert expire(village.engine, village.code, date(2024, 3, 1)) == []
    assert_consistent(village)
