"""Scoring rules as the offline verifier applies them: versions, points, scope, caps, cooldowns.

`ledger/rules.py` and `ledger/awards.py` decide, with a database, whether an
award or deduction may post. This module answers the same questions from an
export alone (part of `audit/verify.py`, so standard library only): the rule
versions come from the `admin` entries of the chain (metadata `{"event":
"rule_version", "rule": <definition>, "version": n}`), members, households
and units from `organisation.json`. The semantics are the ledger's, and
`tests/audit/test_verify_rules.py` holds the two side by side:

- the version named must be the newest version of the rule, among those
  defined earlier in the chain, that is in force on the day the activity
  happened, in the programme's time zone (`rules.rule_in_force`);
- the member is within the rule's scope; evidence is given where required;
  the points are what the version gives (fixed, or `quantity * points //
  per`), positive for awards and negative for deductions; a rule that
  needs approval names an approver other than the actor;
- caps count the rule's *unreversed* applications to the member (or every
  member of the household) whose `occurred_at` falls in the same period
  (day, week from Monday, month, year, lifetime) as this one, as
  `awards._check_limits` counts them at the moment of posting: a reversal
  frees what it reversed for later awards, never for earlier ones;
- a cooldown refuses another unreversed application to the same member
  within that many minutes either side.

`AwardRules` holds the checks that need only the versions defined before an
entry (so chunks of the file can be checked in parallel); `Limits` those
that depend on every earlier application, checked in order. Its memory
grows with members and periods still open, not with entries: a period is
dropped once no later entry can fall in it (`Limits.set_horizon`).
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ledger.canonical import MAX_SAFE_INTEGER

RULE_EVENT = "rule_version"
SIGNS = ("award", "deduction")
PERIODS = ("day", "week", "month", "year", "lifetime")
CAP_SUBJECTS = ("member", "household")
APPROVALS = ("never", "always", "above")
MAX_CAPS = 8
MAX_COOLDOWN_MINUTES = 366 * 24 * 60
MAX_CAP_TIMES = 1_000_000
DEFINITION_FIELDS = frozenset({
    "code", "name", "category", "description", "sign", "points", "per_unit", "scope", "caps",
    "cooldown_minutes", "evidence_required", "approval", "approval_above_points", "roles",
    "in_force_from", "in_force_until",
})
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_MICROSECONDS_PER_MINUTE = 60_000_000
_FOREVER = 1 << 62
"""A window end later than any date: the lifetime period never closes."""
CACHE_ENTRIES = 20_000
"""Caches by hour or day are emptied when they reach this: they grow with the time the
entries span, and entries come roughly in time order, so old answers are rarely asked again."""


class DefinitionError(ValueError):
    """A rule definition recorded in the chain is malformed; `path` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Cap:
    per: str
    period: str
    max_points: int | None
    max_times: int | None

    def describe(self) -> str:
        limits = []
        if self.max_points is not None:
            limits.append(f"{self.max_points} points")
        if self.max_times is not None:
            limits.append(f"{self.max_times} times")
        period = "in all" if self.period == "lifetime" else f"per {self.period}"
        return f"at most {' and '.join(limits)} per {self.per} {period}"


@dataclass(frozen=True)
class PerUnit:
    unit: str
    points: int
    per: int
    max_quantity: int | None


@dataclass(frozen=True)
class RuleVersion:
    """One version of a rule, as the chain recorded it."""

    code: str
    version: int
    entry_seq: int | None
    """The admin entry that defined it; None for a version defined before a range export."""
    definition: dict[str, Any] = field(compare=False)
    sign: str
    points: int | None
    per_unit: PerUnit | None
    scope: str | None
    caps: tuple[Cap, ...]
    cooldown_minutes: int
    evidence_required: bool
    approval: str
    approval_above_points: int | None
    in_force_from: int | None
    """Date ordinals, in the programme's time zone; `in_force_until` is exclusive."""
    in_force_until: int | None
    code_bytes: bytes = b""
    sign_bytes: bytes = b""
    """`code` and `sign` as they appear in entry lines."""

    def in_force_on(self, day: int) -> bool:
        if self.in_force_from is not None and day < self.in_force_from:
            return False
        return self.in_force_until is None or day < self.in_force_until

    def points_for(self, quantity: int | None) -> int | str:
        """Points (a magnitude) for one application, or why `quantity` earns none."""
        if self.per_unit is None:
            if quantity is not None:
                return f"no quantity (rule {self.code} gives fixed points)"
            return self.points
        unit = self.per_unit
        if quantity is None or quantity <= 0:
            return f"a whole, positive quantity of {unit.unit}s"
        if unit.max_quantity is not None and quantity > unit.max_quantity:
            return f"at most {unit.max_quantity} {unit.unit}s per activity"
        points = quantity * unit.points // unit.per
        if points == 0:
            return f"a quantity that earns a whole point ({unit.points} per {unit.per})"
        return points

    def needs_approval(self, points: int) -> bool:
        if self.approval == "always":
            return True
        return self.approval == "above" and points > self.approval_above_points


def parse_definition(definition: Any, version: int, entry_seq: int | None) -> RuleVersion:
    """Validate a recorded definition as `ledger.rules.parse_rule` does; raises `DefinitionError`.

    Only what decides whether an award may post is interpreted (name,
    category, description and roles are text the verifier cannot check
    against anything), but every field must be one a rule can have.
    """
    if not isinstance(definition, Mapping):
        raise DefinitionError("rule", "must be an object of rule fields")
    unknown = sorted(set(definition) - DEFINITION_FIELDS)
    if unknown:
        raise DefinitionError(f"rule.{unknown[0]}", "is not a rule field")
    code = definition.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise DefinitionError("rule.code", "must be a rule code")
    sign = definition.get("sign")
    if sign not in SIGNS:
        raise DefinitionError("rule.sign", "must be award or deduction")
    points = _integer(definition, "points", 1, MAX_SAFE_INTEGER, None)
    per_unit = _per_unit(definition.get("per_unit"))
    if (points is None) == (per_unit is None):
        raise DefinitionError("rule.points", "or per_unit must be given, not both")
    caps_data = definition.get("caps") or []
    if not isinstance(caps_data, list) or len(caps_data) > MAX_CAPS:
        raise DefinitionError("rule.caps", f"must be a list of at most {MAX_CAPS} caps")
    caps = tuple(_cap(cap, f"rule.caps[{index}]") for index, cap in enumerate(caps_data))
    approval = definition.get("approval") or "never"
    if approval not in APPROVALS:
        raise DefinitionError("rule.approval", f"must be one of {', '.join(APPROVALS)}")
    above = _integer(definition, "approval_above_points", 0, MAX_SAFE_INTEGER, None)
    if (approval == "above") != (above is not None):
        raise DefinitionError("rule.approval_above_points", "is given exactly when approval is "
                              "'above'")
    scope = definition.get("scope")
    if scope is not None and (not isinstance(scope, str) or not CODE_PATTERN.match(scope)):
        raise DefinitionError("rule.scope", "must be a unit code")
    evidence_required = definition.get("evidence_required", False)
    if not isinstance(evidence_required, bool):
        raise DefinitionError("rule.evidence_required", "must be true or false")
    in_force_from = _date(definition, "in_force_from")
    in_force_until = _date(definition, "in_force_until")
    if in_force_from is not None and in_force_until is not None \
            and in_force_until <= in_force_from:
        raise DefinitionError("rule.in_force_until", "must be after in_force_from")
    return RuleVersion(
        code=code,
        version=version,
        entry_seq=entry_seq,
        definition=dict(definition),
        sign=sign,
        points=points,
        per_unit=per_unit,
        scope=scope,
        caps=caps,
        cooldown_minutes=_integer(definition, "cooldown_minutes", 0, MAX_COOLDOWN_MINUTES, 0),
        evidence_required=evidence_required,
        approval=approval,
        approval_above_points=above,
        in_force_from=in_force_from,
        in_force_until=in_force_until,
        code_bytes=code.encode(),
        sign_bytes=sign.encode(),
    )


def _integer(data: Mapping, key: str, minimum: int, maximum: int,
             default: int | None) -> int | None:
    value = data.get(key)
    if value is None:
        return default
    if type(value) is not int or not minimum <= value <= maximum:
        raise DefinitionError(f"rule.{key}", f"must be a whole number from {minimum} to {maximum}")
    return value


def _date(data: Mapping, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not _DATE_PATTERN.match(value):
            raise ValueError(value)
        return date.fromisoformat(value).toordinal()
    except ValueError:
        raise DefinitionError(f"rule.{key}", "must be a date YYYY-MM-DD") from None


def _per_unit(data: Any) -> PerUnit | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) - {"unit", "points", "per", "max_quantity"}:
        raise DefinitionError("rule.per_unit", "must hold unit, points, per and max_quantity")
    unit = data.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        raise DefinitionError("rule.per_unit.unit", "is required text")
    points = _integer(data, "points", 1, MAX_SAFE_INTEGER, None)
    if points is None:
        raise DefinitionError("rule.per_unit.points", "is required")
    return PerUnit(unit, points, _integer(data, "per", 1, MAX_SAFE_INTEGER, 1),
                   _integer(data, "max_quantity", 1, MAX_SAFE_INTEGER, None))


def _cap(data: Any, path: str) -> Cap:
    if not isinstance(data, Mapping) or set(data) - {"per", "period", "max_points", "max_times"}:
        raise DefinitionError(path, "must hold per, period, max_points and max_times")
    per = data.get("per") or "member"
    if per not in CAP_SUBJECTS:
        raise DefinitionError(f"{path}.per", "must be member or household")
    period = data.get("period")
    if period not in PERIODS:
        raise DefinitionError(f"{path}.period", f"must be one of {', '.join(PERIODS)}")
    cap = Cap(per, period, _integer(data, "max_points", 1, MAX_SAFE_INTEGER, None),
              _integer(data, "max_times", 1, MAX_CAP_TIMES, None))
    if cap.max_points is None and cap.max_times is None:
        raise DefinitionError(path, "needs max_points, max_times or both")
    return cap


# -- time: days and periods in the programme's time zone -----------------------------------


class Calendar:
    """Local dates of hashed UTC timestamps, and the periods caps count in.

    A timestamp is `YYYY-MM-DDTHH:MM:SS.ffffffZ` (ASCII bytes). Days are date
    ordinals in the programme's time zone; a period is identified by the
    ordinal of its first day and ends (exclusive) at the ordinal of the next
    one's. Answers are cached per UTC hour, which is all that is needed unless
    a local midnight falls inside the hour (zones offset by a part of an hour).
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._hour_days: dict[bytes, int | None] = {}
        self._month_year: dict[int, tuple[int, int, int, int]] = {}

    def whole_hour(self, timestamp: bytes) -> bool:
        """Whether the whole UTC hour of `timestamp` falls on one local day."""
        self.day(timestamp)
        return self._hour_days.get(timestamp[:13]) is not None

    def day(self, timestamp: bytes) -> int:
        hour = timestamp[:13]
        day = self._hour_days.get(hour, -1)
        if day is None:
            return self._local_day(microseconds(timestamp))
        if day == -1:
            start = _hour_start(hour)
            first = self._local_day(start)
            last = self._local_day(start + 3_600_000_000 - 1)
            day = first if first == last else None
            if len(self._hour_days) >= CACHE_ENTRIES:
                self._hour_days.clear()
            self._hour_days[hour] = day
            if day is None:
                return self._local_day(microseconds(timestamp))
        return day

    def _local_day(self, micros: int) -> int:
        moment = _EPOCH + timedelta(microseconds=micros)
        return moment.astimezone(self.zone).date().toordinal()

    def window(self, period: str, day: int) -> tuple[int, int]:
        """[first day, end day) of the `period` holding local `day`."""
        if period == "day":
            return day, day + 1
        if period == "week":
            start = day - (day - 1) % 7  # ordinal 1, 0001-01-01, is a Monday
            return start, start + 7
        if period == "lifetime":
            return 0, _FOREVER
        bounds = self._month_year.get(day)
        if bounds is None:
            local = date.fromordinal(day)
            month_start = local.replace(day=1)
            month_end = (month_start + timedelta(days=32)).replace(day=1)
            bounds = (month_start.toordinal(), month_end.toordinal(),
                      date(local.year, 1, 1).toordinal(), date(local.year + 1, 1, 1).toordinal())
            if len(self._month_year) >= CACHE_ENTRIES:
                self._month_year.clear()
            self._month_year[day] = bounds
        return bounds[:2] if period == "month" else bounds[2:]

    @staticmethod
    def label(period: str, day: int) -> str:
        """The period holding `day` as `ledger.rules.period_label` says it."""
        local = date.fromordinal(day)
        if period == "day":
            return local.isoformat()
        if period == "week":
            return f"the week from {(local - timedelta(days=local.weekday())).isoformat()}"
        if period == "month":
            return local.strftime("%Y-%m")
        if period == "year":
            return str(local.year)
        return "all time"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(timestamp: bytes) -> int:
    """Microseconds since 1970 of a hashed UTC timestamp (already checked well formed)."""
    return (datetime.fromisoformat(timestamp[:26].decode()) - _NAIVE_EPOCH) // _MICROSECOND


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _hour_start(hour: bytes) -> int:
    return microseconds(hour + b":00:00.000000Z")


def _timestamp(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- members, and the checks of one award or deduction --------------------------------------


@dataclass(frozen=True)
class Member:
    code: str
    household: str
    unit: str
    unit_path: str
    """`/town/village/`, as `ledger.organisation` stores it."""


class Finding(Exception):
    """What is wrong with an entry: the problem's field, what was expected, what was found."""

    def __init__(self, field: str, expected: str, found: str) -> None:
        super().__init__(f"{field}: expected {expected}, found {found}")
        self.field = field
        self.expected = expected
        self.found = found

    def __reduce__(self) -> tuple:
        """Pickled as its three parts: workers send findings back to the verifier."""
        return Finding, (self.field, self.expected, self.found)


class AwardRules:
    """The checks on an award or deduction that need only the rule versions defined before it.

    Built from every rule version in the chain, found by a look ahead (and,
    for a range export, those rules.json lists from before the range), so
    that chunks of the file can be checked in any order: which versions an
    entry may use is decided by its `seq`. Caps and cooldowns, which depend on
    the applications before it, are left to `Limits`.
    """

    def __init__(self, versions: list[RuleVersion], members: Mapping[bytes, Member],
                 units: Mapping[str, str], calendar: Calendar) -> None:
        self.members = members
        self.units = units
        """Unit code -> path, for scopes."""
        self.calendar = calendar
        self._versions: dict[bytes, list[RuleVersion]] = {}
        for rule in sorted(versions, key=lambda rule: -1 if rule.entry_seq is None
                           else rule.entry_seq):
            self._versions.setdefault(rule.code.encode(), []).append(rule)
        self._defined_at = {code: [-1 if rule.entry_seq is None else rule.entry_seq
                                   for rule in rules]
                            for code, rules in self._versions.items()}
        self.limited = frozenset(code for code, rules in self._versions.items()
                                 if any(rule.caps or rule.cooldown_minutes for rule in rules))
        """Rules some version of which caps or cools down: their applications are counted."""
        self.cooling = frozenset(code for code, rules in self._versions.items()
                                 if any(rule.cooldown_minutes for rule in rules))
        """Rules some version of which cools down: the times of applications are kept."""
        self.versions = list(versions)
        self.index = {(rule.code_bytes, rule.version): number
                      for number, rule in enumerate(self.versions)}
        """(code, version) -> position in `versions`: how records name a version."""
        self._by_hour: dict[tuple[bytes, bytes], tuple[int, int, RuleVersion | None, int]] = {}
        """(code, UTC hour) -> (first seq, end seq, version in force, local day): the answer
        for entries in [first, end), between two definitions of the rule."""

    def check(self, seq: int, kind: bytes, account: bytes, points: int, code: bytes,
              version: int, quantity: int | None, occurred_at: bytes, has_evidence: bool,
              approved: bool) -> int:
        """Check that entry `seq` could apply this rule version as it did; raises `Finding`.

        `points` are the member's (signed); `approved` says a second person
        (not the actor) approved. Returns the local day of `occurred_at`.
        """
        known = self._by_hour.get((code, occurred_at[:13]))
        if known is not None and known[0] <= seq < known[1]:
            rule, day = known[2], known[3]
        else:
            rule, day = self._in_force(seq, code, version, occurred_at)
        if rule is None or rule.version != version:
            newest = "a version" if rule is None else f"version {rule.version} (the newest)"
            raise Finding("rule", f"{newest} of rule {code.decode()} in force on "
                          f"{date.fromordinal(day).isoformat()}",
                          f"{code.decode()} version {version}")
        if kind != rule.sign_bytes:
            raise Finding("kind", f"{rule.sign} (rule {rule.code} is one)", kind.decode())
        if rule.scope is not None:
            member = self.members[account]
            scope_path = self.units.get(rule.scope)
            if scope_path is None or not member.unit_path.startswith(scope_path):
                raise Finding("scope", f"a member within unit {rule.scope}",
                              f"member {member.code} of unit {member.unit}")
        if rule.evidence_required and not has_evidence:
            raise Finding("evidence", f"an evidence reference (rule {rule.code} requires one)",
                          "null")
        if rule.per_unit is None and quantity is None:
            magnitude = rule.points
        else:
            magnitude = rule.points_for(quantity)
            if isinstance(magnitude, str):
                raise Finding("points", magnitude, f"quantity {quantity}")
        if points != (magnitude if rule.sign_bytes == b"award" else -magnitude):
            raise Finding("points", f"{magnitude} (rule {rule.code} version {rule.version}"
                          f"{'' if quantity is None else f' for {quantity}'})", str(abs(points)))
        if rule.approval != "never" and not approved and rule.needs_approval(magnitude):
            raise Finding("approver", f"a second person's approval (rule {rule.code}: approval "
                          f"{rule.approval})", "none")
        return day

    def _in_force(self, seq: int, code: bytes, version: int,
                  occurred_at: bytes) -> tuple[RuleVersion | None, int]:
        """The newest version of `code` defined before `seq` and in force then, and the day."""
        defined_at = self._defined_at.get(code, ())
        defined = bisect.bisect_left(defined_at, seq)
        if not defined:
            raise Finding("rule", "a rule defined earlier in the chain",
                          f"{code.decode()} version {version}")
        day = self.calendar.day(occurred_at)
        rule = next((rule for rule in reversed(self._versions[code][:defined])
                     if rule.in_force_on(day)), None)
        if self.calendar.whole_hour(occurred_at):
            end = defined_at[defined] + 1 if defined < len(defined_at) else 1 << 62
            if len(self._by_hour) >= CACHE_ENTRIES:
                self._by_hour.clear()
            self._by_hour[(code, occurred_at[:13])] = (defined_at[defined - 1] + 1, end, rule,
                                                      day)
        return rule, day


# -- caps and cooldowns: what depends on every application before --------------------------


class Limits:
    """Unreversed applications of rules that cap or cool down, and the checks on the next one.

    Counted per rule, subject (member or household) and period, for every
    (period, subject) some version of the rule caps by, from the first
    application on; cooldowns keep the times of applications, per rule and
    member. `set_horizon` drops what no later entry can fall in.
    """

    def __init__(self, versions: list[RuleVersion], calendar: Calendar) -> None:
        self.calendar = calendar
        tracked: dict[bytes, set[tuple[int, bool]]] = {}
        self.cooldowns: dict[bytes, int] = {}
        for rule in versions:
            tracked.setdefault(rule.code_bytes, set()).update(
                (PERIODS.index(cap.period), cap.per == "member") for cap in rule.caps)
            if rule.cooldown_minutes:
                self.cooldowns[rule.code_bytes] = max(
                    self.cooldowns.get(rule.code_bytes, 0),
                    rule.cooldown_minutes * _MICROSECONDS_PER_MINUTE)
        self.tracked = {code: tuple(sorted(pairs)) for code, pairs in tracked.items()}
        """Rule code -> (period index, per member?) pairs counted for it."""
        self._caps = {id(rule): tuple((PERIODS.index(cap.period), cap.per == "member", cap)
                                      for cap in rule.caps) for rule in versions}
        """The caps of each version, in its order (the order the ledger checks them)."""
        self._counts: dict[tuple, list[int]] = {}
        """(code, period index, per member?, subject, first day of its period) -> [times,
        points]."""
        self._closing: dict[int, list[tuple]] = {}
        """End day -> the counts of periods that end then, to drop them together."""
        self._ends: list[int] = []
        """Heap of the end days in `_closing`."""
        self._times: dict[tuple[bytes, str], list[int]] = {}
        """(code, member) -> sorted occurred_at (microseconds) of applications."""
        self._periods: dict[int, tuple[tuple[int, int], ...]] = {}
        """Local day -> [first day, end day) of its day, week, month, year and lifetime."""
        self.horizon_micros = 0

    def set_horizon(self, earliest_day: bytes | None) -> None:
        """No later entry happened before the UTC date `earliest_day`: older periods go.

        None (or not a date) when that is not known: nothing is dropped.
        """
        try:
            day = date.fromisoformat(earliest_day.decode()).toordinal()
        except (AttributeError, ValueError):
            return
        horizon_day = day - 1  # a local date is at most one day before the UTC date
        self.horizon_micros = (horizon_day - _EPOCH_ORDINAL) * 86_400_000_000
        while self._ends and self._ends[0] <= horizon_day:
            for key in self._closing.pop(heapq.heappop(self._ends)):
                self._counts.pop(key, None)

    def _periods_of(self, day: int) -> tuple[tuple[int, int], ...]:
        if len(self._periods) >= CACHE_ENTRIES:
            self._periods.clear()
        periods = self._periods[day] = tuple(self.calendar.window(period, day)
                                             for period in PERIODS)
        return periods

    def check(self, rule: RuleVersion, member: Member, magnitude: int, day: int,
              micros: int) -> None:
        """Caps and cooldown of `rule` for this application; counts it. Raises `Finding`.

        `micros` is when it happened (microseconds since 1970), needed for rules
        that cool down.
        """
        code = rule.code_bytes
        periods = self._periods.get(day) or self._periods_of(day)
        counts = self._counts
        for period, per_member, cap in self._caps[id(rule)]:
            subject = member.code if per_member else member.household
            counted = counts.get((code, period, per_member, subject, periods[period][0]))
            times, points = (0, 0) if counted is None else counted
            if (cap.max_times is not None and times >= cap.max_times) or (
                    cap.max_points is not None and points + magnitude > cap.max_points):
                raise Finding("cap", f"{cap.describe()} (rule {rule.code})",
                              f"{cap.per} {subject} already had {times} time(s) and "
                              f"{points} point(s) in {self.calendar.label(cap.period, day)}, "
                              f"then {magnitude} more")
        if code in self.cooldowns:
            cooldown = rule.cooldown_minutes * _MICROSECONDS_PER_MINUTE
            times = self._times.get((code, member.code))
            if cooldown and times:
                position = bisect.bisect_right(times, micros - cooldown)
                if position < len(times) and times[position] < micros + cooldown:
                    raise Finding("cooldown", f"at most one application of rule {rule.code} to "
                                  f"{member.code} every {rule.cooldown_minutes} minutes",
                                  f"another within that time of {_timestamp(micros)}")
            self._time(code, member.code, micros, 1)
        for period, per_member in self.tracked.get(code, ()):
            start, end = periods[period]
            key = (code, period, per_member, member.code if per_member else member.household,
                   start)
            counted = counts.get(key)
            if counted is not None:
                counted[0] += 1
                counted[1] += magnitude
                continue
            counts[key] = [1, magnitude]
            if end < _FOREVER:  # remember when the period closes, to drop it then
                closing = self._closing.get(end)
                if closing is None:
                    closing = self._closing[end] = []
                    heapq.heappush(self._ends, end)
                closing.append(key)

    def unapply(self, code: bytes, member: Member, magnitude: int, occurred_at: bytes) -> None:
        """A reversal: what it reversed no longer counts for later applications."""
        if code not in self.tracked and code not in self.cooldowns:
            return
        day = self.calendar.day(occurred_at)
        periods = self._periods.get(day) or self._periods_of(day)
        for period, per_member in self.tracked.get(code, ()):
            subject = member.code if per_member else member.household
            counted = self._counts.get((code, period, per_member, subject, periods[period][0]))
            if counted is not None:  # else the period is over: nothing later counts it
                counted[0] -= 1
                counted[1] -= magnitude
        if code in self.cooldowns:
            self._time(code, member.code, microseconds(occurred_at), -1)

    def _time(self, code: bytes, member: str, micros: int, sign: int) -> None:
        times = self._times.get((code, member))
        if times is None:
            times = self._times[(code, member)] = []
        if sign < 0:
            position = bisect.bisect_left(times, micros)
            if position < len(times) and times[position] == micros:
                del times[position]
            return
        bisect.insort(times, micros)
        stale = self.horizon_micros - self.cooldowns[code]
        if times[0] < stale:
            del times[:bisect.bisect_left(times, stale)]
