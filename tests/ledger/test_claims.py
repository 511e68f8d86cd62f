"""Claims: proposals, second-person approval, rejection, the public-notice window (公示).

Throughout, a claim that has not posted must not have moved any balance:
each test compares balances before and after every step that is not a post.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from ledger import errors
from ledger.claims import (
    approve,
    get_claim,
    list_claims,
    object_to,
    post_due,
    reject,
    resolve_objection,
)
from ledger.models import Programme
from ledger.organisation import grant_role
from ledger.statements import balances
from ledger.storage import write_transaction
from tests.ledger.conftest import (
    EAST_ORGANISER,
    EAST_REVIEWER,
    WEST_REVIEWER,
    WHEN,
)

NOTICE_DAYS = 3
TOWN_REVIEWER = "reviewer:town"
APPROVED_AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
"""When the reviewer approves, in tests that pass `now=` (the notice window counts from it)."""


def set_notice_days(town, days: int) -> None:
    """Programme setting: how long an approved claim is shown before it posts."""
    with write_transaction(town.engine) as connection:
        connection.execute(
            update(Programme).where(Programme.code == town.code).values(notice_days=days)
        )


def propose(town, member: str = "e0", rule: str = "rescue", **request) -> int:
    outcome = town.award(member, rule, **request)
    assert (outcome.status, outcome.entry) == ("proposed", None)
    return outcome.claim_id


@pytest.fixture
def rescue(town):
    """A town whose 'rescue' rule (50 points) always needs a second person."""
    town.rule("rescue", points=50, approval="always", category="volunteering")
    return town


# -- proposing touches nothing ----------------------------------------------------------------


def test_a_rule_needing_approval_yields_a_claim_and_touches_no_balance(rescue):
    town = rescue
    before = town.snapshot()

    outcome = town.award("e0", "rescue", memo="pulled a child from the river",
                         evidence="sha256:witness")

    assert (outcome.status, outcome.points, outcome.entry) == ("proposed", 50, None)
    claim = get_claim(town.engine, town.code, outcome.claim_id)
    assert (claim.status, claim.member, claim.rule, claim.points) == ("pending", "e0",
                                                                      "rescue", 50)
    assert (claim.proposer, claim.decided_by, claim.entry_seq) == (EAST_ORGANISER, None, None)
    assert claim.evidence == "sha256:witness"
    after = town.snapshot()
    assert (after.chain_size, after.balances) == (before.chain_size, before.balances)
    assert [claim.id for claim in after.claims] == [outcome.claim_id]


def test_a_dry_run_of_a_claim_says_it_would_be_proposed_and_writes_nothing(rescue):
    town = rescue
    before = town.snapshot()

    would = town.award("e0", "rescue", dry_run=True)

    assert (would.status, would.points, would.claim_id) == ("would_propose", 50, None)
    assert town.snapshot() == before


def test_proposing_again_with_the_same_key_returns_the_same_claim(rescue):
    town = rescue

    first = propose(town, idempotency_key="app:7")
    again = propose(town, idempotency_key="app:7")

    assert first == again
    assert len(list_claims(town.engine, town.code)) == 1
    with pytest.raises(errors.IdempotencyConflict):
        town.award("e1", "rescue", idempotency_key="app:7")


def test_approval_above_a_threshold_applies_only_to_big_awards(town):
    town.rule("volunteer", per_unit={"unit": "minute", "points": 5, "per": 60},
              approval="above", approval_above_points=20)

    small = town.award("e0", "volunteer", quantity=240)   # 20 points: not above
    big = town.award("e1", "volunteer", quantity=300)     # 25 points

    assert (small.status, small.points) == ("posted", 20)
    assert (big.status, big.points) == ("proposed", 25)
    assert town.points("e0") == (20, 20)
    assert town.points("e1") == (0, 0)


# -- approving --------------------------------------------------------------------------------


def test_an_approved_claim_posts_once_naming_proposer_and_approver(rescue):
    town = rescue
    claim_id = propose(town, memo="pulled a child from the river")

    claim = approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER)

    assert (claim.status, claim.decided_by) == ("posted", EAST_REVIEWER)
    entry = town.entries("award")[0]
    assert claim.entry_seq == entry.seq
    assert (entry.actor, entry.approver) == (EAST_ORGANISER, EAST_REVIEWER)
    assert (entry.rule.code, entry.rule.version) == ("rescue", 1)
    assert (entry.memo, entry.occurred_at) == ("pulled a child from the river",
                                               "2026-11-20T02:00:00.000000Z")
    assert town.points("e0") == (50, 50)
    with pytest.raises(errors.LedgerError) as second:
        approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER)
    assert second.value.code == "claim_not_open"
    assert town.entries_under("rescue") == 1
    town.assert_verifies()


def test_the_proposer_cannot_approve_their_own_claim(rescue):
    town = rescue
    grant_role(town.engine, town.code, EAST_ORGANISER, "reviewer", "east")
    claim_id = propose(town)
    before = town.snapshot()

    with pytest.raises(errors.LedgerError) as refused:
        approve(town.engine, town.code, claim_id, reviewer=EAST_ORGANISER)

    assert refused.value.code == "same_person"
    assert town.snapshot() == before


def test_a_reviewer_outside_the_subtree_cannot_approve(rescue):
    town = rescue
    claim_id = propose(town)
    before = town.snapshot()

    with pytest.raises(errors.LedgerError) as refused:
        approve(town.engine, town.code, claim_id, reviewer=WEST_REVIEWER)

    assert refused.value.code == "not_in_scope"
    assert town.snapshot() == before
    assert get_claim(town.engine, town.code, claim_id).status == "pending"


def test_an_organiser_without_the_reviewer_role_cannot_approve(rescue):
    town = rescue
    claim_id = propose(town, actor="organiser:town")

    with pytest.raises(errors.LedgerError) as refused:
        approve(town.engine, town.code, claim_id, reviewer=EAST_ORGANISER)

    assert refused.value.code == "not_in_scope"


def test_an_unknown_claim_is_refused(rescue):
    with pytest.raises(errors.LedgerError) as refused:
        approve(rescue.engine, rescue.code, 999_999, reviewer=EAST_REVIEWER)

    assert refused.value.code == "unknown_claim"


def test_caps_hold_at_approval_and_the_claim_stays_pending(town):
    town.rule("rescue", points=50, approval="always", caps=[{"period": "day", "max_times": 1}])
    first = propose(town)
    second = propose(town, occurred_at=WHEN + timedelta(hours=1))
    approve(town.engine, town.code, first, reviewer=EAST_REVIEWER)
    before = town.snapshot()

    with pytest.raises(errors.LedgerError) as refused:
        approve(town.engine, town.code, second, reviewer=EAST_REVIEWER)

    assert refused.value.code == "over_cap"
    assert town.snapshot() == before
    assert get_claim(town.engine, town.code, second).status == "pending"
    assert town.points("e0") == (50, 50)


# -- rejecting --------------------------------------------------------------------------------


def test_a_rejection_leaves_an_admin_entry_with_the_reason_and_no_points(rescue):
    town = rescue
    claim_id = propose(town)
    balances_before = balances(town.engine, town.code)

    entry = reject(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER,
                   reason="no witness could confirm it")

    assert (entry.kind, entry.actor, entry.postings) == ("admin", EAST_REVIEWER, ())
    assert entry.metadata == {
        "event": "claim_rejected", "claim": claim_id, "member": "e0", "rule": "rescue",
        "points": 50, "proposer": EAST_ORGANISER, "reason": "no witness could confirm it",
    }
    assert "no witness could confirm it" in entry.memo
    claim = get_claim(town.engine, town.code, claim_id)
    assert (claim.status, claim.reason, claim.decided_by, claim.entry_seq) == (
        "rejected", "no witness could confirm it", EAST_REVIEWER, entry.seq
    )
    assert balances(town.engine, town.code) == balances_before
    with pytest.raises(errors.LedgerError) as late:
        approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER)
    assert late.value.code == "claim_not_open"
    town.assert_verifies()


def test_a_rejection_needs_a_reason_and_another_person(rescue):
    town = rescue
    claim_id = propose(town)
    before = town.snapshot()

    with pytest.raises(errors.LedgerError) as no_reason:
        reject(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, reason="  ")
    with pytest.raises(errors.LedgerError) as own_claim:
        reject(town.engine, town.code, claim_id, reviewer=EAST_ORGANISER, reason="changed mind")

    assert (no_reason.value.code, no_reason.value.details["field"]) == ("invalid_entry",
                                                                       "reason")
    assert own_claim.value.code == "same_person"
    assert town.snapshot() == before


# -- the public-notice window (公示) ----------------------------------------------------------


def test_an_approved_claim_posts_only_after_the_notice_window(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)
    before = town.snapshot()

    claim = approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)

    assert (claim.status, claim.decided_by) == ("notice", EAST_REVIEWER)
    assert claim.notice_until == "2026-11-24T09:00:00.000000Z"
    assert town.chain_size() == before.chain_size
    assert town.snapshot().balances == before.balances
    window_end = APPROVED_AT + timedelta(days=NOTICE_DAYS)
    assert post_due(town.engine, town.code, now=window_end - timedelta(minutes=1)) == []
    assert town.snapshot().balances == before.balances

    posted = post_due(town.engine, town.code, now=window_end + timedelta(minutes=1))

    assert [outcome.status for outcome in posted] == ["posted"]
    entry = posted[0].entry
    assert (entry.actor, entry.approver) == (EAST_ORGANISER, EAST_REVIEWER)
    assert get_claim(town.engine, town.code, claim_id).entry_seq == entry.seq
    assert town.points("e0") == (50, 50)
    assert post_due(town.engine, town.code, now=window_end + timedelta(days=1)) == []
    assert town.entries_under("rescue") == 1
    town.assert_verifies()


def test_a_claim_that_cannot_post_does_not_hold_up_the_others(rescue):
    town = rescue
    town.rule("patrol", points=10, approval="always", category="volunteering")
    set_notice_days(town, NOTICE_DAYS)
    stuck = propose(town, "e0", "rescue")
    fine = propose(town, "e1", "patrol")
    for claim_id in (stuck, fine):
        approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)
    town.rule("rescue", points=60, approval="always", category="volunteering")

    outcomes = post_due(town.engine, town.code,
                        now=APPROVED_AT + timedelta(days=NOTICE_DAYS, minutes=1))

    by_claim = {outcome.claim_id: outcome for outcome in outcomes}
    assert by_claim[stuck].status == "refused"
    assert by_claim[stuck].error.code == "rule_changed"
    assert by_claim[fine].status == "posted"
    assert get_claim(town.engine, town.code, stuck).status == "notice"
    assert town.points("e1") == (10, 10)
    town.assert_verifies()


def test_an_objection_in_the_window_stops_the_post_until_resolved(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)
    approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)
    before = town.snapshot()

    objection = object_to(town.engine, town.code, claim_id, by="resident:zhao",
                          reason="he was not there that day", now=APPROVED_AT + timedelta(days=1))

    assert get_claim(town.engine, town.code, claim_id).status == "objected"
    after_window = APPROVED_AT + timedelta(days=NOTICE_DAYS + 1)
    assert post_due(town.engine, town.code, now=after_window) == []
    assert town.snapshot().balances == before.balances
    assert town.chain_size() == before.chain_size
    assert isinstance(objection, int)


def test_an_upheld_objection_rejects_the_claim(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)
    approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)
    objection = object_to(town.engine, town.code, claim_id, by="resident:zhao",
                          reason="he was not there that day", now=APPROVED_AT + timedelta(days=1))
    grant_role(town.engine, town.code, TOWN_REVIEWER, "reviewer", "town")
    balances_before = balances(town.engine, town.code)

    claim = resolve_objection(town.engine, town.code, objection, reviewer=TOWN_REVIEWER,
                              uphold=True, reason="two neighbours confirm",
                              now=APPROVED_AT + timedelta(days=2))

    assert claim.status == "rejected"
    assert "two neighbours confirm" in claim.reason
    rejection = town.entries("admin")[-1]
    assert rejection.metadata["event"] == "claim_rejected"
    assert rejection.actor == TOWN_REVIEWER
    assert post_due(town.engine, town.code,
                    now=APPROVED_AT + timedelta(days=NOTICE_DAYS + 1)) == []
    assert balances(town.engine, town.code) == balances_before
    town.assert_verifies()


def test_a_dismissed_objection_lets_the_claim_post_when_due(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)
    approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)
    objection = object_to(town.engine, town.code, claim_id, by="resident:zhao",
                          reason="he was not there that day", now=APPROVED_AT + timedelta(days=1))

    claim = resolve_objection(town.engine, town.code, objection, reviewer=EAST_REVIEWER,
                              uphold=False, reason="the photo shows him there",
                              now=APPROVED_AT + timedelta(days=2))

    assert claim.status == "notice"
    assert post_due(town.engine, town.code,
                    now=APPROVED_AT + timedelta(days=NOTICE_DAYS) - timedelta(minutes=1)) == []
    posted = post_due(town.engine, town.code,
                      now=APPROVED_AT + timedelta(days=NOTICE_DAYS, minutes=1))
    assert [outcome.status for outcome in posted] == ["posted"]
    assert posted[0].entry.approver == EAST_REVIEWER
    assert town.points("e0") == (50, 50)
    town.assert_verifies()


def test_objections_are_refused_once_the_window_has_closed(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)
    approve(town.engine, town.code, claim_id, reviewer=EAST_REVIEWER, now=APPROVED_AT)

    with pytest.raises(errors.LedgerError) as late:
        object_to(town.engine, town.code, claim_id, by="resident:zhao", reason="too late",
                  now=APPROVED_AT + timedelta(days=NOTICE_DAYS))

    assert late.value.code == "notice_closed"
    assert get_claim(town.engine, town.code, claim_id).status == "notice"


def test_a_pending_claim_cannot_be_objected_to(rescue):
    town = rescue
    set_notice_days(town, NOTICE_DAYS)
    claim_id = propose(town)

    with pytest.raises(errors.LedgerError) as refused:
        object_to(town.engine, town.code, claim_id, by="resident:zhao", reason="not yet shown")

    assert refused.value.code == "claim_not_open"
