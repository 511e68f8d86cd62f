"""Awards and deductions under rules: periods, scope, evidence, quantities, caps, sheets.

Every refusal is checked twice: it carries its own code, and nothing was
written (the chain, every balance and every claim are as before).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY
from ledger.awards import AwardRequest, award_sheet, describe
from ledger.chain import reverse
from ledger.organisation import create_member, grant_role, revoke_grant
from ledger.statements import balance_of
from tests.ledger.conftest import (
    EAST_ORGANISER,
    EAST_REVIEWER,
    RULE_WRITER,
    TOWN_ORGANISER,
    WEST_ORGANISER,
    WHEN,
    make_town,
    shanghai,
)

DAILY_ONCE = [{"period": "day", "max_times": 1}]


def refusal(town, member, rule, **request):
    """The error an award is refused with, after checking that it wrote nothing."""
    before = town.snapshot()
    with pytest.raises(errors.LedgerError) as refused:
        town.award(member, rule, **request)
    assert town.snapshot() == before
    return refused.value


# -- what an award writes ---------------------------------------------------------------------


def test_an_award_posts_points_naming_the_rule_version_and_the_organiser(town):
    town.rule("sweep", points=5)

    outcome = town.award("e0", "sweep", memo="swept the square", evidence="sha256:ab12")

    assert (outcome.status, outcome.points) == ("posted", 5)
    entry = outcome.entry
    assert (entry.kind, entry.actor, entry.approver) == ("award", EAST_ORGANISER, None)
    assert (entry.rule.code, entry.rule.version, entry.rule.quantity) == ("sweep", 1, None)
    assert (entry.memo, entry.evidence) == ("swept the square", "sha256:ab12")
    assert entry.occurred_at == "2026-11-20T02:00:00.000000Z"
    assert {(posting.account, posting.points) for posting in entry.postings} == {
        ("member:e0", 5), (ISSUANCE, -5)
    }
    assert town.points("e0") == (5, 5)
    town.assert_verifies()


def test_a_deduction_posts_even_below_zero_and_lowers_the_score(town):
    town.rule("banquet", sign="deduction", points=30, category="village-rules")
    town.rule("sweep", points=5)

    first = town.award("e0", "banquet")
    town.award("e0", "sweep", occurred_at=WHEN + timedelta(hours=1))

    assert (first.status, first.points, first.entry.kind) == ("posted", -30, "deduction")
    assert {(posting.account, posting.points) for posting in first.entry.postings} == {
        ("member:e0", -30), (PENALTY, 30)
    }
    assert town.points("e0") == (-25, -25)
    assert balance_of(town.engine, town.code, PENALTY).balance_points == 30
    town.assert_verifies()


def test_a_dry_run_says_what_would_post_and_writes_nothing(town):
    town.rule("sweep", points=5, caps=DAILY_ONCE)
    before = town.snapshot()

    would = town.award("e0", "sweep", dry_run=True)

    assert (would.status, would.points, would.entry) == ("would_post", 5, None)
    assert {(posting.account, posting.points) for posting in would.postings} == {
        ("member:e0", 5), (ISSUANCE, -5)
    }
    assert town.snapshot() == before
    town.award("e0", "sweep")
    with pytest.raises(errors.LedgerError) as refused:
        town.award("e0", "sweep", dry_run=True, occurred_at=WHEN + timedelta(hours=2))
    assert refused.value.code == "over_cap"


def test_an_idempotent_retry_returns_the_original_entry(town):
    town.rule("sweep", points=5, caps=DAILY_ONCE)

    first = town.award("e0", "sweep", idempotency_key="app:1")
    again = town.award("e0", "sweep", idempotency_key="app:1")

    assert (first.status, again.status) == ("posted", "replayed")
    assert again.entry == first.entry
    assert town.points("e0") == (5, 5)


@pytest.mark.parametrize("key", ["claim:1", "rule:sweep:v2", "expiry:e0:1:0:2026"])
def test_keys_reserved_for_the_ledgers_own_services_are_refused(town, key):
    town.rule("sweep", points=5, caps=DAILY_ONCE)
    error = refusal(town, "e0", "sweep", idempotency_key=key)
    assert error.code == "invalid_entry"
    assert error.details["field"] == "idempotency_key"


# -- period boundaries, in the programme's time zone (Asia/Shanghai) -------------------------


@pytest.mark.parametrize(
    ("period", "last_of_one", "first_of_next"),
    [
        ("day", shanghai(2026, 11, 20, 23, 59), shanghai(2026, 11, 21, 0, 1)),
        ("week", shanghai(2026, 11, 15, 23, 59), shanghai(2026, 11, 16, 0, 1)),  # Sun -> Mon
        ("month", shanghai(2026, 1, 31, 23, 59), shanghai(2026, 2, 1, 0, 1)),
        ("year", shanghai(2025, 12, 31, 23, 59), shanghai(2026, 1, 1, 0, 1)),
    ],
)
def test_a_cap_of_one_per_period_lets_one_award_each_side_of_the_boundary(
    town, period, last_of_one, first_of_next
):
    town.rule("sweep", points=5, caps=[{"period": period, "max_times": 1}])

    before = town.award("e0", "sweep", occurred_at=last_of_one)
    after = town.award("e0", "sweep", occurred_at=first_of_next)

    assert (before.status, after.status) == ("posted", "posted")
    # Within either period the cap bites.
    assert refusal(town, "e0", "sweep",
                   occurred_at=last_of_one - timedelta(minutes=1)).code == "over_cap"
    assert refusal(town, "e0", "sweep",
                   occurred_at=first_of_next + timedelta(minutes=1)).code == "over_cap"
    assert town.points("e0") == (10, 10)
    town.assert_verifies()


def test_two_awards_a_minute_apart_before_midnight_share_a_day(town):
    town.rule("sweep", points=5, caps=DAILY_ONCE)
    town.award("e0", "sweep", occurred_at=shanghai(2026, 11, 20, 23, 58))

    refused = refusal(town, "e0", "sweep", occurred_at=shanghai(2026, 11, 20, 23, 59))

    assert refused.code == "over_cap"
    assert "2026-11-20" in refused.message


def test_the_day_turns_at_midnight_in_shanghai_not_in_utc(town):
    town.rule("sweep", points=5, caps=DAILY_ONCE)
    # 07:59 and 08:01 in Shanghai are 23:59 and 00:01 UTC: one Shanghai day, two UTC days.
    town.award("e0", "sweep", occurred_at=shanghai(2026, 11, 20, 7, 59))

    refused = refusal(town, "e0", "sweep", occurred_at=shanghai(2026, 11, 20, 8, 1))

    assert refused.code == "over_cap"


# -- caps, cooldowns, households ----------------------------------------------------------------


def test_an_over_cap_refusal_names_the_cap_and_what_was_used(town):
    town.rule("sweep", points=5, caps=[{"period": "day", "max_times": 3}])
    for minute in range(3):
        town.award("e0", "sweep", occurred_at=WHEN + timedelta(minutes=minute))

    refused = refusal(town, "e0", "sweep", occurred_at=WHEN + timedelta(hours=1))

    assert refused.code == "over_cap"
    assert refused.details["cap"] == "at most 3 times per member per day"
    assert (refused.details["used_times"], refused.details["used_points"]) == (3, 15)
    assert "at most 3 times per member per day" in refused.message
    assert town.points("e0") == (15, 15)


def test_a_points_cap_refuses_the_award_that_would_pass_it(town):
    town.rule("sweep", points=5, caps=[{"period": "week", "max_points": 12}])
    town.award("e0", "sweep")
    town.award("e0", "sweep", occurred_at=WHEN + timedelta(hours=1))

    refused = refusal(town, "e0", "sweep", occurred_at=WHEN + timedelta(hours=2))

    assert refused.code == "over_cap"
    assert refused.details["cap"] == "at most 12 points per member per week"
    assert refused.details["used_points"] == 10


def test_members_of_one_household_share_a_household_cap(town):
    town.rule("sweep", points=5, caps=[{"per": "household", "period": "day", "max_points": 10}])
    # e0 and e2 live in household east-1; e1 in east-2.
    town.award("e0", "sweep")
    town.award("e2", "sweep", occurred_at=WHEN + timedelta(minutes=1))

    for member in ("e0", "e2"):
        refused = refusal(town, member, "sweep", occurred_at=WHEN + timedelta(hours=1))
        assert refused.code == "over_cap"
        assert "household 'east-1'" in refused.message
    assert town.award("e1", "sweep").status == "posted"
    assert [town.points(member)[0] for member in ("e0", "e1", "e2")] == [5, 5, 5]


def test_a_cooldown_keeps_applications_apart_both_ways(town):
    town.rule("patrol", points=5, cooldown_minutes=60)
    town.award("e0", "patrol", occurred_at=WHEN)

    later = refusal(town, "e0", "patrol", occurred_at=WHEN + timedelta(minutes=59))
    earlier = refusal(town, "e0", "patrol", occurred_at=WHEN - timedelta(minutes=30))

    assert (later.code, earlier.code) == ("cooldown_active", "cooldown_active")
    assert town.award("e0", "patrol", occurred_at=WHEN + timedelta(minutes=60)).status == "posted"
    assert town.award("e1", "patrol", occurred_at=WHEN).status == "posted"


def test_a_reversed_award_gives_its_cap_room_back(town):
    town.rule("sweep", points=5, caps=DAILY_ONCE)
    first = town.award("e0", "sweep")
    assert refusal(town, "e0", "sweep", occurred_at=WHEN + timedelta(hours=1)).code == "over_cap"

    reverse(town.engine, town.code, first.entry.seq, actor=RULE_WRITER, memo="wrong member")

    assert town.award("e0", "sweep", occurred_at=WHEN + timedelta(hours=1)).status == "posted"
    assert town.points("e0") == (5, 5)
    town.assert_verifies()


# -- evidence and quantities ------------------------------------------------------------------


def test_evidence_is_required_when_the_rule_says_so(town):
    town.rule("hazard-report", points=10, evidence_required=True)

    refused = refusal(town, "e0", "hazard-report")
    posted = town.award("e0", "hazard-report", evidence="sha256:photo")

    assert (refused.code, refused.details["field"]) == ("evidence_required", "evidence")
    assert (posted.status, posted.entry.evidence) == ("posted", "sha256:photo")


def test_per_unit_points_round_down_to_whole_points(town):
    town.rule("volunteer", per_unit={"unit": "minute", "points": 5, "per": 60,
                                     "max_quantity": 240})

    ninety = town.award("e0", "volunteer", quantity=90)
    four_hours = town.award("e1", "volunteer", quantity=240)

    assert (ninety.points, ninety.entry.rule.quantity) == (7, 90)
    assert four_hours.points == 20
    assert town.points("e0") == (7, 7)


@pytest.mark.parametrize(
    ("quantity", "because"),
    [
        (9, "earn no whole point"),       # 9 * 5 / 60 rounds down to 0
        (241, "at most 240 minutes"),
        (0, "whole, positive quantity"),
        (-60, "whole, positive quantity"),
        (None, "whole, positive quantity"),
        (1.5, "whole, positive quantity"),
    ],
)
def test_a_quantity_that_earns_nothing_or_passes_the_maximum_is_refused(town, quantity, because):
    town.rule("volunteer", per_unit={"unit": "minute", "points": 5, "per": 60,
                                     "max_quantity": 240})

    refused = refusal(town, "e0", "volunteer", quantity=quantity)

    assert (refused.code, refused.details["field"]) == ("invalid_quantity", "quantity")
    assert because in refused.message


def test_a_fixed_rule_takes_no_quantity(town):
    town.rule("sweep", points=5)

    assert refusal(town, "e0", "sweep", quantity=3).code == "invalid_quantity"


# -- scope, roles and dates -------------------------------------------------------------------


def test_an_organiser_outside_the_subtree_is_refused(town):
    town.rule("sweep", points=5)

    refused = refusal(town, "e0", "sweep", actor=WEST_ORGANISER)

    assert refused.code == "not_in_scope"
    assert refused.details == {"actor": WEST_ORGANISER, "member": "e0"}
    assert town.award("e0", "sweep", actor=TOWN_ORGANISER).status == "posted"


def test_a_revoked_grant_no_longer_covers_the_member(town):
    town.rule("sweep", points=5)
    grant = grant_role(town.engine, town.code, "organiser:temp", "organiser", "east")
    assert town.award("e0", "sweep", actor="organiser:temp").status == "posted"

    revoke_grant(town.engine, town.code, grant)

    assert refusal(town, "e1", "sweep", actor="organiser:temp").code == "not_in_scope"


def test_a_rule_outside_its_scope_is_refused_even_for_an_organiser_of_the_whole_town(town):
    town.rule("west-well", points=5, scope="west")

    refused = refusal(town, "e0", "west-well", actor=TOWN_ORGANISER)

    assert refused.code == "rule_out_of_scope"
    assert refused.details == {"rule": "west-well", "member": "e0"}
    assert town.award("w0", "west-well", actor=TOWN_ORGANISER).status == "posted"


def test_a_role_the_rule_does_not_allow_is_refused(town):
    town.rule("audit-finding", points=5, roles=["reviewer"])

    refused = refusal(town, "e0", "audit-finding", actor=EAST_ORGANISER)

    assert refused.code == "role_not_allowed"
    assert refused.details["actor"] == EAST_ORGANISER
    assert town.award("e0", "audit-finding", actor=EAST_REVIEWER).status == "posted"


@pytest.mark.parametrize(
    ("in_force", "occurred_at"),
    [
        ({"in_force_from": "2026-11-21"}, shanghai(2026, 11, 20, 23, 59)),  # not yet
        ({"in_force_until": "2026-11-20"}, shanghai(2026, 11, 20, 0, 1)),   # no longer
        ({"in_force_from": "2026-01-01", "in_force_until": "2026-02-01"},
         shanghai(2026, 2, 1, 0, 0)),
    ],
    ids=["not-yet", "no-longer", "until-is-exclusive"],
)
def test_a_rule_not_in_force_when_the_activity_happened_is_refused(town, in_force, occurred_at):
    town.rule("sweep", points=5, **in_force)

    refused = refusal(town, "e0", "sweep", occurred_at=occurred_at)

    assert refused.code == "rule_not_in_force"
    assert refused.details == {"rule": "sweep", "day": occurred_at.date().isoformat()}


def test_a_rule_in_force_from_a_day_applies_from_its_first_minute(town):
    town.rule("sweep", points=5, in_force_from="2026-11-20", in_force_until="2026-11-21")

    assert town.award("e0", "sweep", occurred_at=shanghai(2026, 11, 20, 0, 0)).status == "posted"
    assert town.award("e0", "sweep",
                      occurred_at=shanghai(2026, 11, 20, 23, 59)).status == "posted"


def test_unknown_members_and_rules_are_refused(town):
    town.rule("sweep", points=5)

    assert refusal(town, "nobody", "sweep").code == "unknown_member"
    assert refusal(town, "e0", "no-such-rule").code == "unknown_rule"


def test_an_occurred_at_in_the_future_is_refused(town):
    town.rule("sweep", points=5)

    refused = refusal(town, "e0", "sweep", occurred_at=datetime.now(UTC) + timedelta(hours=1))

    assert (refused.code, refused.details["field"]) == ("invalid_entry", "occurred_at")


# -- sign-in sheets ---------------------------------------------------------------------------

SHEET_LINES = 500
SHEET_BAD_LINES = {
    37: ("nobody", "sweep", {}, "unknown_member"),
    188: ("e5", "old-rule", {}, "rule_not_in_force"),
    250: ("w0", "sweep", {}, "not_in_scope"),
    333: ("e7", "patrol", {"quantity": 9, "evidence": "sha256:sheet"}, "invalid_quantity"),
    402: ("e8", "patrol", {"quantity": 90}, "evidence_required"),
    460: ("e1", "sweep", {}, "over_cap"),
    499: ("e9", "no-such-rule", {}, "unknown_rule"),
}


def sign_in_sheet(sheet: str, members: list[str]) -> list[AwardRequest]:
    """500 lines: 493 good ones (sweeping and evening patrols) and the 7 above.

    Good line i goes to member i mod 50: patrols for even members, sweeps for
    odd ones. e1's ten sweeps (lines 1, 51, ..., 451) fill the daily cap of
    10, so line 460, an eleventh, is over it.
    """
    lines = []
    for line in range(SHEET_LINES):
        key = f"{sheet}:{line}"
        if line in SHEET_BAD_LINES:
            member, rule, extra, _ = SHEET_BAD_LINES[line]
            lines.append(AwardRequest(member, rule, occurred_at=WHEN, idempotency_key=key,
                                      **extra))
        elif line % 2 == 0:
            lines.append(AwardRequest(members[line % 50], "patrol", quantity=90,
                                      occurred_at=WHEN, evidence="sha256:sheet",
                                      idempotency_key=key))
        else:
            lines.append(AwardRequest(members[line % 50], "sweep", occurred_at=WHEN,
                                      memo=f"line {line}", idempotency_key=key))
    return lines


@pytest.fixture
def sheet_town(engine):
    """A town with 50 members in the east village and the sheet's three rules."""
    town = make_town(engine, east_members=50)
    town.rule("sweep", points=2, caps=[{"period": "day", "max_times": 10}])
    town.rule("patrol", per_unit={"unit": "minute", "points": 5, "per": 60},
              evidence_required=True)
    town.rule("old-rule", points=1, in_force_until="2026-01-01")
    return town


def test_a_sheet_posts_the_good_lines_and_explains_the_bad_ones(sheet_town):
    town = sheet_town
    lines = sign_in_sheet("sheet-1", town.east_members)
    sweeps_of_e1 = [line for line, request in enumerate(lines)
                    if request.member == "e1" and request.rule == "sweep"]
    assert len(sweeps_of_e1) == 11 and sweeps_of_e1[-1] == 460  # the sheet is as described
    size_before = town.chain_size()

    outcomes = award_sheet(town.engine, town.code, lines, actor=EAST_ORGANISER)

    refused = {line: outcome.error.code for line, outcome in enumerate(outcomes)
               if outcome.status == "refused"}
    assert refused == {line: bad[3] for line, bad in SHEET_BAD_LINES.items()}
    posted = [outcome for outcome in outcomes if outcome.status == "posted"]
    assert len(posted) == 493
    assert town.chain_size() == size_before + 493
    assert [outcome.entry.seq for outcome in posted] == list(range(size_before,
                                                                   size_before + 493))
    assert all(outcome.entry.idempotency_key == lines[line].idempotency_key
               for line, outcome in enumerate(outcomes) if outcome.status == "posted")
    expected_points = sum(outcome.points for outcome in posted)
    assert expected_points == sum(7 if line.rule == "patrol" else 2
                                  for index, line in enumerate(lines)
                                  if index not in SHEET_BAD_LINES)
    assert sum(town.points(member)[0] for member in town.east_members) == expected_points
    assert describe(outcomes[460])["error"]["code"] == "over_cap"
    town.assert_verifies()


def test_sending_a_sheet_again_posts_nothing_more(sheet_town):
    town = sheet_town
    lines = sign_in_sheet("sheet-1", town.east_members)
    first = award_sheet(town.engine, town.code, lines, actor=EAST_ORGANISER)
    after_first = town.snapshot()

    again = award_sheet(town.engine, town.code, lines, actor=EAST_ORGANISER)

    assert town.snapshot() == after_first
    assert [outcome.status for outcome in again].count("replayed") == 493
    for line, (before, retried) in enumerate(zip(first, again, strict=True)):
        if before.status == "posted":
            assert retried.status == "replayed"
            assert retried.entry == before.entry
        else:
            assert (retried.status, retried.error.code) == ("refused", before.error.code), line


def test_a_dry_run_of_a_sheet_predicts_every_line_and_writes_nothing(sheet_town):
    town = sheet_town
    lines = sign_in_sheet("sheet-1", town.east_members)
    before = town.snapshot()

    predicted = award_sheet(town.engine, town.code, lines, actor=EAST_ORGANISER, dry_run=True)

    assert town.snapshot() == before
    actual = award_sheet(town.engine, town.code, lines, actor=EAST_ORGANISER)
    as_posted = {"would_post": "posted", "refused": "refused"}
    for line, (prediction, outcome) in enumerate(zip(predicted, actual, strict=True)):
        assert as_posted[prediction.status] == outcome.status, line
        assert prediction.points == outcome.points, line
        assert prediction.postings == outcome.postings, line
        if outcome.error is not None:
            assert prediction.error.code == outcome.error.code, line
    assert [outcome.status for outcome in predicted].count("would_post") == 493


def test_a_sheet_line_that_needs_approval_becomes_a_claim(town):
    town.rule("sweep", points=5)
    town.rule("rescue", points=50, approval="always")

    outcomes = award_sheet(town.engine, town.code, [
        AwardRequest("e0", "sweep", occurred_at=WHEN),
        AwardRequest("e1", "rescue", occurred_at=WHEN),
    ], actor=EAST_ORGANISER)

    assert [outcome.status for outcome in outcomes] == ["posted", "proposed"]
    assert outcomes[1].claim_id is not None and outcomes[1].entry is None
    assert town.points("e1") == (0, 0)


def test_a_member_added_to_another_village_is_outside_an_organisers_sheet(town):
    town.rule("sweep", points=5)
    create_member(town.engine, town.code, "w2", "西村新居民", "west-1")

    outcomes = award_sheet(town.engine, town.code, [
        AwardRequest("w2", "sweep", occurred_at=WHEN),
        AwardRequest("e0", "sweep", occurred_at=WHEN),
    ], actor=EAST_ORGANISER)

    assert [outcome.status for outcome in outcomes] == ["refused", "posted"]
    assert outcomes[0].error.code == "not_in_scope"
