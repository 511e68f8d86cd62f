"""Rule definitions: validation with a path to the wrong field, periods, and versioned history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ledger import errors
from ledger.programmes import get_programme
from ledger.rules import (
    InvalidRule,
    parse_rule,
    period_label,
    period_window,
    rule_in_force,
    rule_versions,
    set_rule,
)
from tests.ledger.conftest import (
    RULE_WRITER,
    SHANGHAI,
    rule_definition,
    shanghai,
)

FULL_DEFINITION = {
    "code": "volunteer-hours",
    "name": "志愿服务",
    "category": "volunteering",
    "description": "Volunteer time, signed in on the sheet.",
    "sign": "award",
    "per_unit": {"unit": "minute", "points": 5, "per": 60, "max_quantity": 480},
    "scope": "east",
    "caps": [
        {"per": "member", "period": "week", "max_points": 100},
        {"per": "household", "period": "month", "max_times": 40, "max_points": 300},
    ],
    "cooldown_minutes": 30,
    "evidence_required": True,
    "approval": "above",
    "approval_above_points": 20,
    "roles": ["organiser", "reviewer"],
    "in_force_from": "2026-01-01",
    "in_force_until": "2027-01-01",
}


def with_changes(**changes):
    """FULL_DEFINITION with some fields replaced (a value of None removes the field)."""
    definition = dict(FULL_DEFINITION)
    for key, value in changes.items():
        if value is None:
            definition.pop(key, None)
        else:
            definition[key] = value
    return definition


def with_cap(index: int, **cap_changes):
    caps = [dict(cap) for cap in FULL_DEFINITION["caps"]]
    for key, value in cap_changes.items():
        if value is None:
            caps[index].pop(key, None)
        else:
            caps[index][key] = value
    return with_changes(caps=caps)


def with_per_unit(**per_unit_changes):
    per_unit = dict(FULL_DEFINITION["per_unit"])
    for key, value in per_unit_changes.items():
        if value is None:
            per_unit.pop(key, None)
        else:
            per_unit[key] = value
    return with_changes(per_unit=per_unit)


# -- parse_rule -------------------------------------------------------------------------------


def test_a_full_definition_parses_and_round_trips_through_json():
    rule = parse_rule(FULL_DEFINITION)

    assert rule.per_unit.points_for(90) == 7
    assert [cap.describe() for cap in rule.caps] == [
        "at most 100 points per member per week",
        "at most 300 points and 40 times per household per month",
    ]
    assert rule.in_force_from == date(2026, 1, 1)
    assert rule.roles == ("organiser", "reviewer")
    assert parse_rule(rule.as_json()) == rule


def test_defaults_are_spelled_out_in_the_json_form():
    rule = parse_rule(rule_definition("sweep"))

    assert rule.as_json() == {
        "code": "sweep", "name": "rule sweep", "category": "test", "description": "",
        "sign": "award", "points": 5, "per_unit": None, "scope": None, "caps": [],
        "cooldown_minutes": 0, "evidence_required": False, "approval": "never",
        "approval_above_points": None, "roles": ["organiser"], "in_force_from": None,
        "in_force_until": None,
    }


BAD_DEFINITIONS = [
    ("not a mapping", ["code", "sweep"], "rule"),
    ("unknown field", with_changes(pionts=5), "rule.pionts"),
    ("missing code", with_changes(code=None), "rule.code"),
    ("code not a slug", with_changes(code="Volunteer Hours"), "rule.code"),
    ("missing name", with_changes(name=None), "rule.name"),
    ("blank category", with_changes(category="  "), "rule.category"),
    ("description too long", with_changes(description="x" * 2_001), "rule.description"),
    ("missing sign", with_changes(sign=None), "rule.sign"),
    ("unknown sign", with_changes(sign="bonus"), "rule.sign"),
    ("both points and per_unit", with_changes(points=5), "rule.points"),
    ("neither points nor per_unit", with_changes(per_unit=None), "rule.points"),
    ("zero points", with_changes(per_unit=None, points=0), "rule.points"),
    ("points as text", with_changes(per_unit=None, points="5"), "rule.points"),
    ("points as a boolean", with_changes(per_unit=None, points=True), "rule.points"),
    ("points as a float", with_changes(per_unit=None, points=5.0), "rule.points"),
    ("per_unit not a mapping", with_changes(per_unit=[5, 60]), "rule.per_unit"),
    ("per_unit unknown field", with_per_unit(minutes=60), "rule.per_unit.minutes"),
    ("per_unit without unit", with_per_unit(unit=None), "rule.per_unit.unit"),
    ("per_unit without points", with_per_unit(points=None), "rule.per_unit.points"),
    ("per_unit per zero", with_per_unit(per=0), "rule.per_unit.per"),
    ("per_unit max_quantity zero", with_per_unit(max_quantity=0), "rule.per_unit.max_quantity"),
    ("caps not a list", with_changes(caps={"period": "day"}), "rule.caps"),
    ("too many caps", with_changes(caps=[{"period": "day", "max_times": 1}] * 9), "rule.caps"),
    ("cap not a mapping", with_changes(caps=["day"]), "rule.caps[0]"),
    ("cap without a period", with_cap(1, period=None), "rule.caps[1].period"),
    ("cap with an unknown period", with_cap(0, period="fortnight"), "rule.caps[0].period"),
    ("cap per an unknown subject", with_cap(1, per="village"), "rule.caps[1].per"),
    ("cap without any limit", with_cap(0, max_points=None), "rule.caps[0]"),
    ("cap with an unknown field", with_cap(0, max_minutes=3), "rule.caps[0].max_minutes"),
    ("cap with zero times", with_cap(1, max_times=0), "rule.caps[1].max_times"),
    ("negative cooldown", with_changes(cooldown_minutes=-1), "rule.cooldown_minutes"),
    ("evidence_required as text", with_changes(evidence_required="yes"),
     "rule.evidence_required"),
    ("unknown approval", with_changes(approval="sometimes", approval_above_points=None),
     "rule.approval"),
    ("approval above without threshold", with_changes(approval_above_points=None),
     "rule.approval_above_points"),
    ("threshold without approval above", with_changes(approval="always"),
     "rule.approval_above_points"),
    ("no roles", with_changes(roles=[]), "rule.roles"),
    ("a role that cannot apply rules", with_changes(roles=["auditor"]), "rule.roles"),
    ("roles as text", with_changes(roles="organiser"), "rule.roles"),
    ("in_force_from not a date", with_changes(in_force_from="20260101"), "rule.in_force_from"),
    ("in_force_from not a real date", with_changes(in_force_from="2026-02-30"),
     "rule.in_force_from"),
    ("in_force_until before in_force_from", with_changes(in_force_until="2025-12-31"),
     "rule.in_force_until"),
    ("in_force_until equal to in_force_from", with_changes(in_force_until="2026-01-01"),
     "rule.in_force_until"),
    ("scope not a unit code", with_changes(scope="East Village"), "rule.scope"),
]


@pytest.mark.parametrize(
    ("definition", "path"),
    [(definition, path) for _, definition, path in BAD_DEFINITIONS],
    ids=[name for name, _, _ in BAD_DEFINITIONS],
)
def test_a_bad_definition_is_refused_naming_the_field(definition, path):
    with pytest.raises(InvalidRule) as refused:
        parse_rule(definition)

    assert refused.value.code == "invalid_rule"
    assert refused.value.details["path"] == path
    assert refused.value.message.startswith(path + " ")


def test_the_path_starts_from_where_the_caller_found_the_rule():
    with pytest.raises(InvalidRule) as refused:
        parse_rule(with_cap(0, period="fortnight"), "rules[3]")

    assert refused.value.details["path"] == "rules[3].caps[0].period"


# -- periods ----------------------------------------------------------------------------------


def test_a_day_runs_from_midnight_to_midnight_in_the_programme_time_zone():
    start, end = period_window("day", shanghai(2026, 11, 20, 23, 59), SHANGHAI)

    assert (start, end) == ("2026-11-19T16:00:00.000000Z", "2026-11-20T16:00:00.000000Z")
    assert period_window("day", shanghai(2026, 11, 21, 0, 1), SHANGHAI)[0] == end
    assert period_label("day", datetime(2026, 11, 20, 16, 1, tzinfo=UTC), SHANGHAI) == \
        "2026-11-21"


@pytest.mark.parametrize(
    ("period", "moment", "window", "label"),
    [
        ("week", shanghai(2026, 11, 22, 23, 59),
         ("2026-11-15T16:00:00.000000Z", "2026-11-22T16:00:00.000000Z"),
         "the week from 2026-11-16"),
        ("month", shanghai(2026, 2, 1, 0, 1),
         ("2026-01-31T16:00:00.000000Z", "2026-02-28T16:00:00.000000Z"), "2026-02"),
        ("month", shanghai(2026, 12, 31, 23, 59),
         ("2026-11-30T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z"), "2026-12"),
        ("year", shanghai(2026, 1, 1, 0, 1),
         ("2025-12-31T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z"), "2026"),
        ("lifetime", shanghai(2026, 1, 1), (None, None), "all time"),
    ],
)
def test_weeks_start_on_monday_and_months_and_years_on_their_first_day(period, moment, window,
                                                                       label):
    assert period_window(period, moment, SHANGHAI) == window
    assert period_label(period, moment, SHANGHAI) == label


# -- storage and history ----------------------------------------------------------------------


def test_a_rule_change_makes_a_version_and_old_entries_keep_naming_the_old_one(town):
    first = town.rule("sweep", points=5)
    old = town.award("e0", "sweep").entry
    second = town.rule("sweep", points=8)
    new = town.award("e1", "sweep").entry

    assert (first.version, second.version) == (1, 2)
    assert (old.rule.code, old.rule.version) == ("sweep", 1)
    assert (new.rule.code, new.rule.version) == ("sweep", 2)
    assert town.points("e0") == (5, 5)
    assert town.points("e1") == (8, 8)
    # Each entry still agrees with the definition of the version it names.
    programme = get_programme(town.engine, town.code)
    versions = {rule.version: rule for rule in rule_versions(town.engine, programme.id, "sweep")}
    for entry in (old, new):
        member_points = [posting.points for posting in entry.postings
                         if posting.account.startswith("member:")]
        assert member_points == [versions[entry.rule.version].points_for(None)]
    town.assert_verifies()


def test_every_version_is_an_admin_entry_with_the_whole_definition(town):
    first = town.rule("sweep", points=5)
    second = town.rule("sweep", points=8, caps=[{"period": "day", "max_times": 2}])

    admin = town.entries("admin")
    assert [entry.metadata["version"] for entry in admin] == [1, 2]
    assert [entry.metadata["event"] for entry in admin] == ["rule_version", "rule_version"]
    assert admin[0].metadata["rule"] == first.as_json()
    assert admin[1].metadata["rule"] == second.as_json()
    assert admin[1].metadata["rule"]["caps"] == [
        {"per": "member", "period": "day", "max_points": None, "max_times": 2}
    ]
    assert all(entry.actor == RULE_WRITER and entry.postings == () for entry in admin)
    # The definitions the service reads are the ones the chain holds.
    programme = get_programme(town.engine, town.code)
    stored = rule_versions(town.engine, programme.id, "sweep")
    assert [rule.as_json() for rule in stored] == [entry.metadata["rule"] for entry in admin]
    town.assert_verifies()


def test_setting_the_same_definition_again_adds_no_version(town):
    town.rule("sweep", points=5)
    size = town.chain_size()

    again = town.rule("sweep", points=5)
    spelled_out = set_rule(
        town.engine, town.code,
        rule_definition("sweep", points=5, approval="never", roles=["organiser"], caps=[],
                        evidence_required=False),
        RULE_WRITER,
    )

    assert again.version == spelled_out.version == 1
    assert town.chain_size() == size
    programme = get_programme(town.engine, town.code)
    assert len(rule_versions(town.engine, programme.id, "sweep")) == 1


def test_a_rule_scoped_to_an_unknown_unit_is_refused_and_nothing_is_written(town):
    before = town.snapshot()

    with pytest.raises(errors.UnknownUnit) as refused:
        town.rule("sweep", scope="north")

    assert refused.value.details["unit"] == "north"
    assert town.snapshot() == before


def test_an_invalid_definition_writes_nothing(town):
    before = town.snapshot()

    with pytest.raises(InvalidRule) as refused:
        set_rule(town.engine, town.code, rule_definition("sweep", points=-5), RULE_WRITER)

    assert refused.value.details["path"] == "rule.points"
    assert town.snapshot() == before


def test_the_version_in_force_is_the_newest_whose_dates_hold_the_moment(town):
    town.rule("sweep", points=5, in_force_until="2026-06-01")
    town.rule("sweep", points=8, in_force_from="2026-06-01")
    programme = get_programme(town.engine, town.code)
    versions = rule_versions(town.engine, programme.id, "sweep")

    may = rule_in_force(versions, shanghai(2026, 5, 31, 23, 59), SHANGHAI)
    june = rule_in_force(versions, shanghai(2026, 6, 1, 0, 1), SHANGHAI)

    assert (may.version, june.version) == (1, 2)
    assert town.award("e0", "sweep", occurred_at=shanghai(2026, 6, 1, 0, 1)).points == 8


def test_an_award_before_a_scheduled_change_uses_the_version_then_in_force(town):
    town.rule("sweep", points=5, in_force_until="2026-06-01")
    town.rule("sweep", points=8, in_force_from="2026-06-01")

    outcome = town.award("e0", "sweep", occurred_at=shanghai(2026, 5, 31, 23, 59))

    assert (outcome.points, outcome.entry.rule.version) == (5, 1)
