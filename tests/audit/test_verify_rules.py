"""The verifier's rules (audit/verify_rules.py) held side by side with the ledger's own.

The verifier cannot import ledger.rules (it needs SQLAlchemy), so it carries
its own reading of rule definitions, periods and points; these tests keep
the two the same on the sample catalogs, on dates across time zones with
daylight saving and part-hour offsets, and on the counting of caps.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from audit.verify_rules import (
    PERIODS,
    Calendar,
    DefinitionError,
    Finding,
    Limits,
    Member,
    microseconds,
    parse_definition,
)
from ledger.catalogs import SAMPLE_CATALOGS, load_catalog, sample_catalog_path
from ledger.entry_format import format_timestamp
from ledger.rules import InvalidQuantity, parse_rule, period_label, period_window

ZONES = ("Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham", "UTC")


def sample_rules() -> list[dict]:
    return [rule for name in SAMPLE_CATALOGS
            for rule in load_catalog(sample_catalog_path(name)).rules]


def moments(count: int, seed: int = 6) -> list[datetime]:
    generator = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    found = [start + timedelta(seconds=generator.randrange(3 * 365 * 86400),
                               microseconds=generator.randrange(1_000_000))
             for _ in range(count)]
    # Around the 2025 daylight-saving changes in New York and around midnights.
    for base in (datetime(2025, 3, 9, 6, 0, tzinfo=UTC), datetime(2025, 11, 2, 5, 0, tzinfo=UTC),
                 datetime(2025, 12, 31, 15, 0, tzinfo=UTC)):
        found += [base + timedelta(minutes=minutes) for minutes in range(-90, 91, 7)]
    return found


def test_every_sample_rule_reads_the_same_as_the_ledger_reads_it():
    for definition in sample_rules():
        ledger_rule = parse_rule(definition)
        rule = parse_definition(ledger_rule.as_json(), 1, 0)
        assert (rule.code, rule.sign, rule.points, rule.scope, rule.cooldown_minutes,
                rule.evidence_required, rule.approval, rule.approval_above_points) == (
            ledger_rule.code, ledger_rule.sign, ledger_rule.points, ledger_rule.scope,
            ledger_rule.cooldown_minutes, ledger_rule.evidence_required, ledger_rule.approval,
            ledger_rule.approval_above_points)
        assert [(cap.per, cap.period, cap.max_points, cap.max_times) for cap in rule.caps] == [
            (cap.per, cap.period, cap.max_points, cap.max_times) for cap in ledger_rule.caps]
        for quantity in (None, 0, 1, 7, 59, 60, 61, 90, 480, 481, 10_000):
            try:
                expected: int | str = ledger_rule.points_for(quantity)
            except InvalidQuantity:
                expected = "refused"
            found = rule.points_for(quantity)
            assert (found if isinstance(found, int) else "refused") == expected, \
                (rule.code, quantity)
        for points in (0, 1, 8, 10, 11, 100):
            assert rule.needs_approval(points) == ledger_rule.needs_approval(points)


def test_rules_in_force_between_dates_agree_with_the_ledger():
    zone = ZoneInfo("Asia/Shanghai")
    ledger_rule = parse_rule({"code": "season", "name": "夏季", "category": "c", "sign": "award",
                              "points": 1, "in_force_from": "2026-06-01",
                              "in_force_until": "2026-09-01"})
    rule = parse_definition(ledger_rule.as_json(), 1, 0)
    calendar = Calendar(zone)
    for moment in moments(300) + [datetime(2026, 5, 31, 16, 0, tzinfo=UTC),
                                  datetime(2026, 8, 31, 15, 59, 59, tzinfo=UTC)]:
        day = calendar.day(format_timestamp(moment).encode())
        assert rule.in_force_on(day) == ledger_rule.in_force_at(moment, zone), moment


@pytest.mark.parametrize("zone_name", ZONES)
def test_local_days_and_periods_are_the_ledgers(zone_name):
    zone = ZoneInfo(zone_name)
    calendar = Calendar(zone)
    for moment in moments(400):
        timestamp = format_timestamp(moment).encode()
        day = calendar.day(timestamp)
        assert day == moment.astimezone(zone).date().toordinal(), moment
        for period in PERIODS:
            start, end = period_window(period, moment, zone)
            first, last = calendar.window(period, day)
            if start is None:
                assert (first, end) == (0, None)
                continue
            # The ledger counts occurred_at in [start, end) as hashed text; the verifier
            # counts local days in [first, last): the same entries fall in both.
            for probe in (moment, moment - timedelta(days=40), moment + timedelta(days=40),
                          datetime.combine(date.fromordinal(first), datetime.min.time(),
                                           zone).astimezone(UTC)):
                text = format_timestamp(probe)
                probe_day = calendar.day(text.encode())
                assert (start <= text < end) == (first <= probe_day < last), (period, probe)
            assert calendar.label(period, day) == period_label(period, moment, zone)


def test_microseconds_are_since_1970_utc():
    for moment in moments(50):
        timestamp = format_timestamp(moment).encode()
        assert microseconds(timestamp) == round((moment - datetime(1970, 1, 1, tzinfo=UTC))
                                                / timedelta(microseconds=1))


@pytest.mark.parametrize(("change", "path"), [
    ({"sign": "bonus"}, "rule.sign"),
    ({"points": None}, "rule.points"),
    ({"caps": [{"per": "member", "period": "fortnight", "max_times": 1}]}, "rule.caps[0].period"),
    ({"caps": [{"per": "member", "period": "day"}]}, "rule.caps[0]"),
    ({"colour": "red"}, "rule.colour"),
    ({"in_force_from": "2026-02-30"}, "rule.in_force_from"),
    ({"approval": "above"}, "rule.approval_above_points"),
])
def test_a_definition_the_ledger_would_refuse_is_refused(change, path):
    definition = parse_rule({"code": "meeting", "name": "会", "category": "c", "sign": "award",
                             "points": 5}).as_json()
    with pytest.raises(DefinitionError) as raised:
        parse_definition({**definition, **change}, 1, 0)
    assert raised.value.path == path


def test_caps_count_unreversed_applications_per_period_and_drop_closed_periods():
    calendar = Calendar(ZoneInfo("Asia/Shanghai"))
    rule = parse_definition(parse_rule({
        "code": "meeting", "name": "会", "category": "c", "sign": "award", "points": 5,
        "caps": [{"per": "member", "period": "day", "max_times": 1},
                 {"per": "household", "period": "lifetime", "max_points": 15}]}).as_json(), 1, 0)
    limits = Limits([rule], calendar)
    zhang, fang = Member("zhang", "h1", "u", "/u/"), Member("fang", "h1", "u", "/u/")
    monday = b"2026-11-02T01:00:00.000000Z"
    day = calendar.day(monday)
    limits.check(rule, zhang, 5, day, 0)
    with pytest.raises(Finding) as over:
        limits.check(rule, zhang, 5, day, 0)
    assert over.value.field == "cap"
    limits.unapply(b"meeting", zhang, 5, monday)
    limits.check(rule, zhang, 5, day, 0)  # the reversal freed the day
    limits.check(rule, fang, 5, day, 0)
    limits.set_horizon(b"2026-11-20")  # the day is over for every later entry
    limits.check(rule, zhang, 5, day + 20, 0)
    with pytest.raises(Finding) as household:
        limits.check(rule, fang, 5, day + 21, 0)
    assert "household h1 already had 3 time(s) and 15 point(s)" in household.value.found
    limits.unapply(b"meeting", zhang, 5, monday)  # its day was dropped: nothing to undo
    assert not any(key[1] == 0 and key[4] == day for key in limits._counts)


def test_caps_are_checked_in_the_rules_order_and_two_caps_may_share_a_period():
    calendar = Calendar(ZoneInfo("Asia/Shanghai"))
    rule = parse_definition(parse_rule({
        "code": "hours", "name": "时", "category": "c", "sign": "award", "points": 4,
        "caps": [{"per": "member", "period": "week", "max_points": 8},
                 {"per": "member", "period": "week", "max_times": 5},
                 {"per": "member", "period": "day", "max_times": 1}]}).as_json(), 1, 0)
    limits = Limits([rule], calendar)
    member = Member("zhang", "h1", "u", "/u/")
    day = calendar.day(b"2026-11-02T01:00:00.000000Z")
    limits.check(rule, member, 4, day, 0)
    limits.check(rule, member, 4, day + 1, 0)
    with pytest.raises(Finding) as over:  # both the weekly points and the daily times
        limits.check(rule, member, 4, day + 1, 0)
    assert over.value.expected.startswith("at most 8 points per member per week")
