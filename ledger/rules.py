"""Scoring rules: versioned data that decides which awards and deductions may be posted.

A rule is identified by its `code` and changes only by gaining a new
version. Each version is recorded twice: as a row of `rule_versions` (what
the service reads) and as an `admin` entry in the chain whose metadata
carries the whole definition (what an auditor reads). Awards name the
version they used, so history never changes meaning.

The definition, in JSON (catalog files use the same keys; docs/RULES.md):

    code, name, category, description      text; code is a slug
    sign                                   "award" or "deduction"
    points                                 fixed points per application, or
    per_unit {unit, points, per, max_quantity}
                                           points = floor(quantity * points / per),
                                           e.g. 5 points per 60 minutes
    scope                                  a unit code: only members in its subtree
    caps [{per, period, max_points, max_times}]
                                           per "member" or "household"; period "day",
                                           "week" (Monday first), "month", "year",
                                           "lifetime"; in the programme's time zone
    cooldown_minutes                       minimum time between two applications
                                           to one member
    evidence_required                      an evidence reference must be given
    approval, approval_above_points        "never", "always", or "above" a number
                                           of points: a second person must approve
    roles                                  roles that may apply the rule
    in_force_from, in_force_until          dates (programme time zone); until is
                                           exclusive
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection, Engine

from ledger import errors
from ledger.canonical import encode_plain
from ledger.chain import MAX_POINTS, Appended, Prepared, append
from ledger.entry_format import format_timestamp
from ledger.models import RuleVersion
from ledger.organisation import require_unit
from ledger.programmes import CODE_PATTERN, ProgrammeInfo, get_programme
from ledger.storage import read_transaction

SIGNS = ("award", "deduction")
PERIODS = ("day", "week", "month", "year", "lifetime")
CAP_SUBJECTS = ("member", "household")
APPROVALS = ("never", "always", "above")
ROLES = ("organiser", "reviewer", "admin", "auditor")
APPLYING_ROLES = ("organiser", "reviewer", "admin")
MAX_TEXT_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_CAPS = 8
RULE_EVENT = "rule_version"

_FIELDS = (
    "code", "name", "category", "description", "sign", "points", "per_unit", "scope", "caps",
    "cooldown_minutes", "evidence_required", "approval", "approval_above_points", "roles",
    "in_force_from", "in_force_until",
)
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidRule(errors.LedgerError):
    """A rule definition is malformed; `details['path']` names the field."""

    code = "invalid_rule"


@dataclass(frozen=True)
class PerUnit:
    unit: str
    points: int
    per: int
    max_quantity: int | None

    def points_for(self, quantity: int) -> int:
        """Integer points for `quantity` units: rounded down, so nobody gets a fraction."""
        return quantity * self.points // self.per


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
class Rule:
    """One version of a scoring rule."""

    code: str
    version: int
    name: str
    category: str
    description: str
    sign: str
    points: int | None
    per_unit: PerUnit | None
    scope: str | None
    caps: tuple[Cap, ...]
    cooldown_minutes: int
    evidence_required: bool
    approval: str
    approval_above_points: int | None
    roles: tuple[str, ...]
    in_force_from: date | None
    in_force_until: date | None

    def points_for(self, quantity: int | None) -> int:
        """Points (a positive magnitude) for one application; raises `InvalidQuantity`."""
        if self.per_unit is None:
            if quantity is not None:
                raise InvalidQuantity(
                    f"rule {self.code!r} gives fixed points and takes no quantity",
                    field="quantity",
                )
            return self.points
        if type(quantity) is not int or quantity <= 0:
            raise InvalidQuantity(
                f"rule {self.code!r} needs a whole, positive quantity of {self.per_unit.unit}s",
                field="quantity",
            )
        if self.per_unit.max_quantity is not None and quantity > self.per_unit.max_quantity:
            raise InvalidQuantity(
                f"rule {self.code!r} allows at most {self.per_unit.max_quantity} "
                f"{self.per_unit.unit}s per activity, not {quantity}",
                field="quantity",
            )
        points = self.per_unit.points_for(quantity)
        if points == 0:
            raise InvalidQuantity(
                f"{quantity} {self.per_unit.unit}s earn no whole point under rule {self.code!r} "
                f"({self.per_unit.points} points per {self.per_unit.per} {self.per_unit.unit}s, "
                "rounded down)",
                field="quantity",
            )
        return points

    def needs_approval(self, points: int) -> bool:
        if self.approval == "always":
            return True
        return self.approval == "above" and points > self.approval_above_points

    def in_force_at(self, moment: datetime, zone: ZoneInfo) -> bool:
        day = moment.astimezone(zone).date()
        if self.in_force_from is not None and day < self.in_force_from:
            return False
        return self.in_force_until is None or day < self.in_force_until

    def as_json(self) -> dict[str, Any]:
        """The definition as plain JSON (without the version): what catalogs and the chain hold."""
        return {
            "code": self.code,
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "sign": self.sign,
            "points": self.points,
            "per_unit": (
                None
                if self.per_unit is None
                else {
                    "unit": self.per_unit.unit,
                    "points": self.per_unit.points,
                    "per": self.per_unit.per,
                    "max_quantity": self.per_unit.max_quantity,
                }
            ),
            "scope": self.scope,
            "caps": [
                {"per": cap.per, "period": cap.period, "max_points": cap.max_points,
                 "max_times": cap.max_times}
                for cap in self.caps
            ],
            "cooldown_minutes": self.cooldown_minutes,
            "evidence_required": self.evidence_required,
            "approval": self.approval,
            "approval_above_points": self.approval_above_points,
            "roles": list(self.roles),
            "in_force_from": self.in_force_from.isoformat() if self.in_force_from else None,
            "in_force_until": self.in_force_until.isoformat() if self.in_force_until else None,
        }


class InvalidQuantity(errors.InvalidEntry):
    code = "invalid_quantity"


# -- parsing and validation ------------------------------------------------------------


def parse_rule(data: Any, path: str = "rule", version: int = 0) -> Rule:
    """Validate a rule definition (a mapping of the keys above) and return it.

    Raises `InvalidRule` naming the first wrong field by path, e.g.
    `rules[3].caps[0].period`. Unknown keys are refused, so a typo is never
    silently ignored.
    """
    if not isinstance(data, Mapping):
        raise _invalid(path, "must be a mapping of rule fields")
    unknown = sorted(set(data) - set(_FIELDS), key=str)
    if unknown:
        raise _invalid(f"{path}.{unknown[0]}",
                       f"is not a rule field (fields: {', '.join(_FIELDS)})")
    code = _text(data, "code", path, required=True)
    if not CODE_PATTERN.match(code):
        raise _invalid(f"{path}.code", "must be 1-64 of a-z, 0-9, '.', '_', '-'")
    sign = _choice(data, "sign", path, SIGNS, default=None)
    points = _integer(data, "points", path, minimum=1, maximum=MAX_POINTS, default=None)
    per_unit = _per_unit(data.get("per_unit"), f"{path}.per_unit")
    if (points is None) == (per_unit is None):
        raise _invalid(f"{path}.points", "give either points (fixed) or per_unit, not both or "
                                         "neither")
    caps_data = data.get("caps", [])
    if caps_data is None:
        caps_data = []
    if not isinstance(caps_data, list) or len(caps_data) > MAX_CAPS:
        raise _invalid(f"{path}.caps", f"must be a list of at most {MAX_CAPS} caps")
    caps = tuple(_cap(cap, f"{path}.caps[{index}]") for index, cap in enumerate(caps_data))
    approval = _choice(data, "approval", path, APPROVALS, default="never")
    above = _integer(data, "approval_above_points", path, minimum=0, maximum=MAX_POINTS,
                     default=None)
    if approval == "above" and above is None:
        raise _invalid(f"{path}.approval_above_points", "is required when approval is 'above'")
    if approval != "above" and above is not None:
        raise _invalid(f"{path}.approval_above_points", "applies only when approval is 'above'")
    roles_data = data.get("roles", ["organiser"])
    if (not isinstance(roles_data, list) or not roles_data
            or any(role not in APPLYING_ROLES for role in roles_data)):
        raise _invalid(f"{path}.roles",
                       f"must be a non-empty list of {', '.join(APPLYING_ROLES)}")
    in_force_from = _date(data, "in_force_from", path)
    in_force_until = _date(data, "in_force_until", path)
    if in_force_from and in_force_until and in_force_until <= in_force_from:
        raise _invalid(f"{path}.in_force_until", "must be after in_force_from")
    evidence_required = data.get("evidence_required", False)
    if not isinstance(evidence_required, bool):
        raise _invalid(f"{path}.evidence_required", "must be true or false")
    scope = data.get("scope")
    if scope is not None and (not isinstance(scope, str) or not CODE_PATTERN.match(scope)):
        raise _invalid(f"{path}.scope", "must be a unit code")
    if sign is None:
        raise _invalid(f"{path}.sign", "is required: award or deduction")
    return Rule(
        code=code,
        version=version,
        name=_text(data, "name", path, required=True),
        category=_text(data, "category", path, required=True),
        description=_text(data, "description", path, maximum=MAX_DESCRIPTION_CHARS),
        sign=sign,
        points=points,
        per_unit=per_unit,
        scope=scope,
        caps=caps,
        cooldown_minutes=_integer(data, "cooldown_minutes", path, minimum=0,
                                  maximum=366 * 24 * 60, default=0),
        evidence_required=evidence_required,
        approval=approval,
        approval_above_points=above,
        roles=tuple(dict.fromkeys(roles_data)),
        in_force_from=in_force_from,
        in_force_until=in_force_until,
    )


def _invalid(path: str, problem: str) -> InvalidRule:
    return InvalidRule(f"{path} {problem}", path=path)


def _text(data: Mapping, key: str, path: str, required: bool = False,
          maximum: int = MAX_TEXT_CHARS) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _invalid(f"{path}.{key}", "is required text" if required else "must be text")
    if len(value) > maximum:
        raise _invalid(f"{path}.{key}", f"is longer than {maximum} characters")
    return value


def _choice(data: Mapping, key: str, path: str, choices: Sequence[str], default: str | None):
    value = data.get(key, default)
    if value is None and default is None:
        return None
    if value not in choices:
        raise _invalid(f"{path}.{key}", f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _integer(data: Mapping, key: str, path: str, minimum: int, maximum: int,
             default: int | None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return default
    if type(value) is not int or not minimum <= value <= maximum:
        raise _invalid(f"{path}.{key}", f"must be a whole number from {minimum} to {maximum}, "
                                        f"not {value!r}")
    return value


def _date(data: Mapping, key: str, path: str) -> date | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_PATTERN.match(value):
        raise _invalid(f"{path}.{key}", f"must be a date YYYY-MM-DD, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise _invalid(f"{path}.{key}", f"is not a real date: {value!r}") from error


def _per_unit(data: Any, path: str) -> PerUnit | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _invalid(path, "must be a mapping with unit, points, per, max_quantity")
    unknown = sorted(set(data) - {"unit", "points", "per", "max_quantity"})
    if unknown:
        raise _invalid(f"{path}.{unknown[0]}", "is not a per_unit field")
    return PerUnit(
        unit=_text(data, "unit", path, required=True),
        points=_integer(data, "points", path, minimum=1, maximum=MAX_POINTS, default=None)
        or _missing(f"{path}.points"),
        per=_integer(data, "per", path, minimum=1, maximum=MAX_POINTS, default=1),
        max_quantity=_integer(data, "max_quantity", path, minimum=1, maximum=MAX_POINTS,
                              default=None),
    )


def _missing(path: str):
    raise _invalid(path, "is required")


def _cap(data: Any, path: str) -> Cap:
    if not isinstance(data, Mapping):
        raise _invalid(path, "must be a mapping with per, period, max_points and/or max_times")
    unknown = sorted(set(data) - {"per", "period", "max_points", "max_times"})
    if unknown:
        raise _invalid(f"{path}.{unknown[0]}", "is not a cap field")
    cap = Cap(
        per=_choice(data, "per", path, CAP_SUBJECTS, default="member"),
        period=_choice(data, "period", path, PERIODS, default=None)
        or _missing(f"{path}.period"),
        max_points=_integer(data, "max_points", path, minimum=1, maximum=MAX_POINTS,
                            default=None),
        max_times=_integer(data, "max_times", path, minimum=1, maximum=1_000_000, default=None),
    )
    if cap.max_points is None and cap.max_times is None:
        raise _invalid(path, "needs max_points, max_times or both")
    return cap


# -- periods ---------------------------------------------------------------------------


def period_window(period: str, moment: datetime, zone: ZoneInfo) -> tuple[str | None, str | None]:
    """The [start, end) of the period holding `moment`, as hashed UTC timestamps.

    Boundaries are midnights in the programme's time zone: an award at 23:59
    and one at 00:01 Asia/Shanghai fall on different days. `lifetime` is
    unbounded (None, None).
    """
    if period == "lifetime":
        return None, None
    local = moment.astimezone(zone).date()
    if period == "day":
        start, end = local, local + timedelta(days=1)
    elif period == "week":
        start = local - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = local.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif period == "year":
        start, end = local.replace(month=1, day=1), local.replace(year=local.year + 1, month=1,
                                                                  day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return (
        format_timestamp(datetime.combine(start, time(), zone)),
        format_timestamp(datetime.combine(end, time(), zone)),
    )


def period_label(period: str, moment: datetime, zone: ZoneInfo) -> str:
    """The period holding `moment` as a person says it: `2026-11-20`, `2026-11`, ..."""
    local = moment.astimezone(zone).date()
    if period == "day":
        return local.isoformat()
    if period == "week":
        return f"the week from {(local - timedelta(days=local.weekday())).isoformat()}"
    if period == "month":
        return local.strftime("%Y-%m")
    if period == "year":
        return str(local.year)
    return "all time"


# -- storage ---------------------------------------------------------------------------


def set_rule(engine: Engine, programme: str, definition: Mapping[str, Any], actor: str) -> Rule:
    """Record `definition` as the next version of its rule, with an admin entry.

    Returns the new version, or the current one unchanged if the definition
    is the same (so importing a catalog twice adds nothing). Raises
    `InvalidRule`, `UnknownUnit` (scope), `RuleChanged` if another change
    to the same rule won the race (retry), and the ledger's errors.
    """
    rule = parse_rule(definition)
    programme_info = get_programme(engine, programme)
    with read_transaction(engine) as connection:
        if rule.scope is not None:
            require_unit(connection, programme_info.id, rule.scope)
        latest = _latest_version(connection, programme_info.id, rule.code)
    if latest is not None and latest.as_json() == rule.as_json():
        return latest
    version = (latest.version if latest else 0) + 1
    definition_json = encode_plain(rule.as_json()).decode("utf-8")

    def still_latest(connection: Connection, programme: ProgrammeInfo, _: Sequence[Prepared]):
        current = connection.execute(
            select(func.max(RuleVersion.version)).where(
                RuleVersion.programme_id == programme.id, RuleVersion.code == rule.code
            )
        ).scalar_one()
        if (current or 0) != version - 1:
            raise RuleChanged(
                f"rule {rule.code!r} changed to version {current} meanwhile; retry",
                rule=rule.code,
            )

    def record(connection: Connection, programme: ProgrammeInfo, entries) -> None:
        connection.execute(
            insert(RuleVersion).values(
                programme_id=programme.id,
                code=rule.code,
                version=version,
                definition_json=definition_json,
                entry_seq=entries[0].seq,
            )
        )

    appended: Appended = append(
        engine,
        programme,
        kind="admin",
        postings=[],
        actor=actor,
        memo=f"rule {rule.code} version {version}: {rule.name}",
        metadata={"event": RULE_EVENT, "rule": rule.as_json(), "version": version},
        idempotency_key=f"rule:{rule.code}:v{version}",
        guard=still_latest,
        after_write=record,
    )
    if not appended.created:
        raise RuleChanged(f"rule {rule.code!r} version {version} exists with other content; "
                          "retry", rule=rule.code)
    return _stored_rule(definition_json, version)


class RuleChanged(errors.LedgerError):
    code = "rule_changed"


class UnknownRule(errors.LedgerError):
    code = "unknown_rule"


_VERSIONS = (
    select(RuleVersion.version, RuleVersion.definition_json)
    .where(RuleVersion.programme_id == bindparam("programme_id"),
           RuleVersion.code == bindparam("code"))
    .order_by(RuleVersion.version)
)


def rule_versions(engine_or_connection: Engine | Connection, programme_id: int,
                  code: str) -> list[Rule]:
    """Every version of a rule, oldest first (empty if there is no such rule)."""
    if isinstance(engine_or_connection, Engine):
        with read_transaction(engine_or_connection) as connection:
            return rule_versions(connection, programme_id, code)
    rows = engine_or_connection.execute(
        _VERSIONS, {"programme_id": programme_id, "code": code}
    ).all()
    return [_stored_rule(definition, version) for version, definition in rows]


def current_rules(engine: Engine, programme: str) -> list[Rule]:
    """The latest version of every rule of a programme, by category then code."""
    programme_info = get_programme(engine, programme)
    with read_transaction(engine) as connection:
        latest = (
            select(RuleVersion.code, func.max(RuleVersion.version).label("version"))
            .where(RuleVersion.programme_id == programme_info.id)
            .group_by(RuleVersion.code)
            .subquery()
        )
        rows = connection.execute(
            select(RuleVersion.version, RuleVersion.definition_json).join(
                latest,
                (RuleVersion.code == latest.c.code) & (RuleVersion.version == latest.c.version),
            ).where(RuleVersion.programme_id == programme_info.id)
        ).all()
    rules = [_stored_rule(definition, version) for version, definition in rows]
    return sorted(rules, key=lambda rule: (rule.category, rule.code))


def rule_in_force(versions: Sequence[Rule], moment: datetime, zone: ZoneInfo) -> Rule | None:
    """The newest version in force at `moment`, or None."""
    for rule in reversed(versions):
        if rule.in_force_at(moment, zone):
            return rule
    return None


def _latest_version(connection: Connection, programme_id: int, code: str) -> Rule | None:
    versions = rule_versions(connection, programme_id, code)
    return versions[-1] if versions else None


@functools.lru_cache(maxsize=4096)
def _stored_rule(definition_json: str, version: int) -> Rule:
    """A stored version, parsed once: versions never change, so the cache is always right."""
    return _rule_from_json(json.loads(definition_json), version)


def _rule_from_json(definition: Mapping[str, Any], version: int) -> Rule:
    rule = parse_rule(definition)
    return Rule(**{**rule.__dict__, "version": version})
