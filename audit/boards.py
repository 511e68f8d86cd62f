"""The three boards (三张榜单) a village posts, derived from the ledger.

- 积分榜 standings: members, or households, ranked by score in a period.
- 公示榜 public disclosure: every award and deduction (and reversal of one),
  newest first, so the community can see it and object; plus the claims
  now in their public-notice window (公示期).
- 光荣榜 honour roll: the best members per rule category, and the best
  households, in a period.

Boards are posted in the village hall, so they name nobody in full: names
are masked (`mask_name`, 张三丰 → 张*丰) and no member code, member id or
account name appears on them. They are read only, from one snapshot each.

Score, as `ledger.chain` defines it, is the sum of the postings on member
accounts of `award` and `deduction` entries and of the reversals of those.
A reversal is exact negation, so a board leaves out a reversed award *and*
its reversal: the award then counts in no period (not in its own, and not
as a minus in the period of its reversal), and over the lifetime a board's
score equals `balances.score_points`. Periods are the programme's local
days, weeks (Monday first), months and years, as for rule caps
(`ledger.rules.period_window`), or an explicit [start, end) range of dates.

Each board is one or two aggregate queries. A period board sums the
postings of the period's entries; the lifetime standings read the
`balances` cache, which is exactly that sum (a test holds them equal). The
subtree of a unit is a prefix of `units.path`. Unlike the rest of `audit`,
this module reads the database: boards are served, not verified offline.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from ledger import errors
from ledger.chain import SCORE_KINDS
from ledger.entry_format import format_timestamp, parse_timestamp
from ledger.models import (
    Account,
    Balance,
    Claim,
    Entry,
    Household,
    Member,
    Posting,
    RuleVersion,
    Unit,
)
from ledger.programmes import ProgrammeInfo, get_programme
from ledger.rules import PERIODS, period_label, period_window
from ledger.storage import read_transaction

RANGE = "range"
"""The period kind of an explicit [start, end) range of local dates."""
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9998, 12, 31)
"""Dates whose year, month and week still end within the calendar."""
MAX_STANDINGS_ROWS = 500
MAX_DISCLOSURE_LINES = 200
MAX_NOTICE_CLAIMS = 200
MAX_HONOUR_TOP = 50
MAX_CHART_MONTHS = 36
NOTICE_STATUS = "notice"
"""The claim status of the public-notice window (see `ledger.claims`)."""
BY = ("member", "household")

_NAME_SEPARATORS = re.compile(r"(\s+|[·・•‧])")


class InvalidPeriod(errors.LedgerError):
    """The period asked for is not one a board can cover; `details['field']` names why."""

    code = "invalid_period"


class InvalidBoardQuery(errors.LedgerError):
    """A board's limit, offset or grouping is out of range; `details['field']` names it."""

    code = "invalid_board_query"


# -- masking ------------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """A name as a public board shows it: first and last character kept, the middle masked.

    张三丰 → 张*丰, 欧阳娜娜 → 欧**娜, 张三 → 张*, 张 → *. Names of several
    words (Latin names, or names joined by a middle dot such as 买买提·艾力)
    are masked word by word: John Smith → J**n S***h, 买买提·艾力 → 买*提·艾*.
    The number of characters is kept, as on paper boards; nothing else of
    the name is. An empty name gives `*`.
    """
    words = _NAME_SEPARATORS.split(" ".join(name.split()))
    masked = "".join(
        word if _NAME_SEPARATORS.fullmatch(word) else _mask_word(word)
        for word in words if word
    )
    return masked or "*"


def redact(text: str, *names: str) -> str:
    """`text` with each of `names` (of two characters or more) replaced by its masked form.

    Memos are written by staff and shown on the disclosure board as the
    reason for an entry; they often name the person (陈杰当天未到场). The
    names of the line's own member and household are masked wherever they
    appear whole; a nickname, a part of a name or someone else's name is
    not recognised, so memos must still be written for the public.
    Longer names go first, so 张三丰家 is masked before 张三丰 could be.
    """
    for name in sorted({name.strip() for name in names if len(name.strip()) >= 2},
                       key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    return text


def _mask_word(word: str) -> str:
    if len(word) <= 1:
        return "*"
    if len(word) == 2:
        return word[0] + "*"
    return word[0] + "*" * (len(word) - 2) + word[-1]


# -- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodQuery:
    """Which period a board covers, as asked: a named period holding `at`, or a range.

    `kind` is one of `ledger.rules.PERIODS` (day, week, month, year,
    lifetime) or `range`. `at` is a local date (default: today in the
    programme's time zone) and has no meaning for `lifetime`; a range needs
    `start` and `end` (exclusive) and no `at`. People give `start` and
    `end` as `from` and `to` (the boards' parameters), so refusals name
    them so.
    """

    kind: str = "lifetime"
    at: date | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Period:
    """A resolved period: local dates [start, end), and the hashed UTC timestamps they begin."""

    kind: str
    label: str
    start: date | None
    end: date | None
    start_at: str | None
    end_at: str | None


def resolve_period(query: PeriodQuery, zone: ZoneInfo, today: date | None = None) -> Period:
    """The [start, end) a `PeriodQuery` names in time zone `zone`.

    Raises `InvalidPeriod` for an unknown kind, a range without both ends or
    with `start >= end`, `at` given with a range, `start`/`end` given with a
    named period, or a date outside 1970-01-01 .. 9998-12-31; its `field`
    is `period`, `at`, `from` (start) or `to` (end).
    """
    if query.kind not in (*PERIODS, RANGE):
        raise InvalidPeriod(f"period {query.kind!r} is not one of "
                            f"{', '.join((*PERIODS, RANGE))}", field="period")
    for name, value in (("at", query.at), ("from", query.start), ("to", query.end)):
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise InvalidPeriod(f"{name} must be a date from {EARLIEST_DATE} to {LATEST_DATE}",
                                field=name)
    if query.kind == RANGE:
        if query.start is None or query.end is None:
            raise InvalidPeriod("a range needs both `from` and `to` (the date it ends before)",
                                field="from" if query.start is None else "to")
        if query.at is not None:
            raise InvalidPeriod("`at` picks a named period; a range has `from` and `to` instead",
                                field="at")
        if query.start >= query.end:
            raise InvalidPeriod(f"the range must end after it starts: from {query.start} to "
                                f"{query.end} is empty (`to` is excluded)", field="to")
        last_day = query.end - timedelta(days=1)
        label = (query.start.isoformat() if last_day == query.start
                 else f"{query.start.isoformat()} to {last_day.isoformat()}")
        return Period(RANGE, label, query.start, query.end, _midnight(query.start, zone),
                      _midnight(query.end, zone))
    if query.start is not None or query.end is not None:
        raise InvalidPeriod(f"`from` and `to` make a range; the {query.kind} period takes `at` "
                            "instead", field="from" if query.start is not None else "to")
    if query.kind == "lifetime":
        return Period("lifetime", period_label("lifetime", datetime.now(zone), zone), None,
                      None, None, None)
    day = query.at or today or datetime.now(zone).date()
    moment = datetime.combine(day, time(12), zone)
    start_at, end_at = period_window(query.kind, moment, zone)
    return Period(query.kind, period_label(query.kind, moment, zone),
                  _local_date(start_at, zone), _local_date(end_at, zone), start_at, end_at)


def _midnight(day: date, zone: ZoneInfo) -> str:
    return format_timestamp(datetime.combine(day, time(), zone))


def _local_date(timestamp: str, zone: ZoneInfo) -> date:
    return parse_timestamp(timestamp).astimezone(zone).date()


# -- what the boards hold -----------------------------------------------------------------


@dataclass(frozen=True)
class UnitRef:
    code: str
    name: str


@dataclass(frozen=True)
class MemberStanding:
    rank: int
    name: str
    """Masked."""
    household: str
    """Masked."""
    unit: str
    """The name of the member's unit."""
    score_points: int


@dataclass(frozen=True)
class HouseholdStanding:
    rank: int
    household: str
    """Masked."""
    unit: str
    members: int
    score_points: int
    """The sum of its members' scores."""


@dataclass(frozen=True)
class Standings:
    """积分榜: a page of the ranking; ties share a rank (1, 2, 2, 4)."""

    period: Period
    unit: UnitRef | None
    by: str
    items: list[MemberStanding] | list[HouseholdStanding]
    next_offset: int | None
    """Pass as `offset` for the next page; None on the last."""


@dataclass(frozen=True)
class DisclosureLine:
    """One award, deduction or reversal as it moved one member's score."""

    seq: int
    kind: str
    occurred_at: str
    occurred_on: date
    """`occurred_at` as a date in the programme's time zone."""
    name: str
    household: str
    unit: str
    rule: str | None
    rule_name: str | None
    category: str | None
    points: int
    """Signed: a reversal of an award is negative."""
    memo: str
    reverses: int | None
    """For a reversal: the entry it undoes."""
    reversed_by: int | None
    """For an award or deduction: the reversal that undid it, if any."""

    @property
    def reversed(self) -> bool:
        return self.reversed_by is not None


@dataclass(frozen=True)
class NoticeClaim:
    """A claim approved and shown for objection before it posts (公示期)."""

    claim: int
    occurred_at: str
    occurred_on: date
    name: str
    household: str
    unit: str
    rule: str
    rule_name: str | None
    category: str | None
    points: int
    memo: str
    notice_until: str


@dataclass(frozen=True)
class Disclosure:
    """公示榜: a page of lines, newest recorded first, and the claims in notice now."""

    period: Period
    unit: UnitRef | None
    items: list[DisclosureLine]
    next_before: tuple[int, int] | None
    """(seq, position) to pass as `before` for the next (older) page; None on the last."""
    in_notice: list[NoticeClaim]


@dataclass(frozen=True)
class HonourCategory:
    category: str
    items: list[MemberStanding]


@dataclass(frozen=True)
class HonourRoll:
    """光荣榜: per category of award rules, the members ranked `top` or better; and households."""

    period: Period
    unit: UnitRef | None
    top: int
    categories: list[HonourCategory]
    households: list[HouseholdStanding]


@dataclass(frozen=True)
class MonthAwards:
    """Points awarded in one local month, by rule category (None: awards naming no rule)."""

    start: date
    """The month's first day."""
    by_category: dict[str | None, int]

    @property
    def total_points(self) -> int:
        return sum(self.by_category.values())


@dataclass(frozen=True)
class AwardsByMonth:
    """Points awarded per month and per category: what the chart beside the boards draws."""

    unit: UnitRef | None
    months: list[MonthAwards]
    """Oldest first, one per month, months without awards included."""
    categories: list[str | None]
    """The categories holding any points, in the catalog's order; None (no rule) last."""


# -- the boards ---------------------------------------------------------------------------


def standings(engine: Engine, programme: str, *, unit: str | None = None,
              period: PeriodQuery = PeriodQuery(), by: str = "member", limit: int = 50,
              offset: int = 0) -> Standings:
    """积分榜: every member (or household) of `unit`'s subtree ranked by score in `period`.

    Members with no score in the period stand at 0. A household (one with
    members) stands on the board of the unit it belongs to, with the sum of
    all its members' scores. Ties share a rank; order within a tie is
    stable but means nothing. Raises `UnknownProgramme`, `UnknownUnit`,
    `InvalidPeriod`, `InvalidBoardQuery` (`by`, `limit` outside 1..500,
    negative `offset`).
    """
    if by not in BY:
        raise InvalidBoardQuery(f"by must be one of {', '.join(BY)}", field="by")
    _check_range("limit", limit, 1, MAX_STANDINGS_ROWS)
    _check_range("offset", offset, 0, 2**31 - 1)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        resolved = resolve_period(period, programme_info.zone)
        unit_ref, path = _unit(connection, programme_info, unit)
        scores = _member_scores(programme_info.id, resolved)
        if by == "member":
            ranked = _ranked_members(programme_info.id, scores, path)
            rows = connection.execute(
                select(ranked.c.rank, ranked.c.name, ranked.c.household, ranked.c.unit,
                       ranked.c.score)
                .order_by(ranked.c.rank, ranked.c.id).offset(offset).limit(limit + 1)
            ).all()
            items: list = [MemberStanding(row.rank, mask_name(row.name),
                                          mask_name(row.household), row.unit, int(row.score))
                           for row in rows[:limit]]
        else:
            ranked = _ranked_households(programme_info.id, scores, path)
            rows = connection.execute(
                select(ranked.c.rank, ranked.c.household, ranked.c.unit, ranked.c.members,
                       ranked.c.score)
                .order_by(ranked.c.rank, ranked.c.id).offset(offset).limit(limit + 1)
            ).all()
            items = [HouseholdStanding(row.rank, mask_name(row.household), row.unit,
                                       int(row.members), int(row.score))
                     for row in rows[:limit]]
    next_offset = offset + limit if len(rows) > limit else None
    return Standings(resolved, unit_ref, by, items, next_offset)


def disclosure(engine: Engine, programme: str, *, unit: str | None = None,
               period: PeriodQuery = PeriodQuery(), limit: int = 50,
               before: tuple[int, int] | None = None) -> Disclosure:
    """公示榜: awards, deductions and their reversals of `unit`'s members, newest recorded first.

    Lines are per member posting, ordered by `seq` (the order the ledger
    recorded them, so a late-entered award shows at the top, where people
    look), filtered to those that occurred in `period`. Each award or
    deduction says whether it was reversed and by which entry; a reversal
    says what it undid, and its memo says why. `before` continues from a
    page's `next_before`. The claims in their notice window are listed in
    full (at most 200, oldest first) whatever the period, since they are
    what people may still object to. Raises `UnknownProgramme`,
    `UnknownUnit`, `InvalidPeriod`, `InvalidBoardQuery` (`limit` outside
    1..200).
    """
    _check_range("limit", limit, 1, MAX_DISCLOSURE_LINES)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        zone = programme_info.zone
        resolved = resolve_period(period, zone)
        unit_ref, path = _unit(connection, programme_info, unit)
        original = aliased(Entry)
        reversal = aliased(Entry)
        query = (
            select(Entry.seq, Posting.position, Entry.kind, Entry.occurred_at,
                   Posting.amount_points, Entry.memo, Member.name,
                   Household.name.label("household"), Unit.name.label("unit"),
                   func.coalesce(Entry.rule_code, original.rule_code).label("rule_code"),
                   func.coalesce(Entry.rule_version,
                                 original.rule_version).label("rule_version"),
                   Entry.reverses_seq, reversal.seq.label("reversed_by"))
            .select_from(Posting)
            .join(Entry, and_(Entry.programme_id == Posting.programme_id,
                              Entry.seq == Posting.entry_seq))
            .join(Account, Account.id == Posting.account_id)
            .join(Member, Member.id == Account.member_id)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .outerjoin(original, and_(original.programme_id == Entry.programme_id,
                                      original.seq == Entry.reverses_seq))
            .outerjoin(reversal, and_(reversal.programme_id == Entry.programme_id,
                                      reversal.reverses_seq == Entry.seq))
            .where(Posting.programme_id == programme_info.id, Account.kind == "member",
                   or_(Entry.kind.in_(SCORE_KINDS),
                       and_(Entry.kind == "reversal", original.kind.in_(SCORE_KINDS))),
                   *_within_period(Entry.occurred_at, resolved), *_within(Unit.path, path))
            .order_by(Posting.entry_seq.desc(), Posting.position.desc())
            .limit(limit + 1)
        )
        if before is not None:
            before_seq, before_position = before
            query = query.where(or_(Posting.entry_seq < before_seq,
                                    and_(Posting.entry_seq == before_seq,
                                         Posting.position < before_position)))
        rows = connection.execute(query).all()
        claims = connection.execute(
            select(Claim.id, Claim.occurred_at, Member.name, Household.name.label("household"),
                   Unit.name.label("unit"), Claim.rule_code, Claim.points, Claim.memo,
                   Claim.notice_until)
            .join(Member, Member.id == Claim.member_id)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .where(Claim.programme_id == programme_info.id, Claim.status == NOTICE_STATUS,
                   *_within(Unit.path, path))
            .order_by(Claim.id)
            .limit(MAX_NOTICE_CLAIMS)
        ).all()
        rules = _rule_names(connection, programme_info.id,
                            {row.rule_code for row in rows if row.rule_code is not None}
                            | {claim.rule_code for claim in claims})
    lines = []
    for row in rows[:limit]:
        rule_name, category = rules.get((row.rule_code, row.rule_version), (None, None))
        lines.append(DisclosureLine(
            seq=row.seq, kind=row.kind, occurred_at=row.occurred_at,
            occurred_on=_local_date(row.occurred_at, zone), name=mask_name(row.name),
            household=mask_name(row.household), unit=row.unit, rule=row.rule_code,
            rule_name=rule_name, category=category, points=int(row.amount_points),
            memo=redact(row.memo, row.name, row.household), reverses=row.reverses_seq,
            reversed_by=row.reversed_by,
        ))
    next_before = (rows[limit - 1].seq, rows[limit - 1].position) if len(rows) > limit else None
    in_notice = []
    for claim in claims:
        rule_name, category = rules.get((claim.rule_code, None), (None, None))
        in_notice.append(NoticeClaim(
            claim=claim.id, occurred_at=claim.occurred_at,
            occurred_on=_local_date(claim.occurred_at, zone), name=mask_name(claim.name),
            household=mask_name(claim.household), unit=claim.unit, rule=claim.rule_code,
            rule_name=rule_name, category=category, points=int(claim.points),
            memo=redact(claim.memo, claim.name, claim.household),
            notice_until=claim.notice_until,
        ))
    return Disclosure(resolved, unit_ref, lines, next_before, in_notice)


def honour_roll(engine: Engine, programme: str, *, unit: str | None = None,
                period: PeriodQuery = PeriodQuery("month"), top: int = 10) -> HonourRoll:
    """光荣榜: per category of award rules, members ranked `top` or better by score in it.

    A member's score in a category is what rules of that category (as the
    version applied said) gave them in `period`, deductions included; only
    positive scores are honoured. Ties share a rank, so a list can hold
    more than `top` names when the last place is shared. Categories are
    those of every award rule the programme has (an empty list where nobody
    scored). Households: ranked the same way on their whole score, as on
    `standings`. Raises `UnknownProgramme`, `UnknownUnit`, `InvalidPeriod`,
    `InvalidBoardQuery` (`top` outside 1..50).
    """
    _check_range("top", top, 1, MAX_HONOUR_TOP)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        resolved = resolve_period(period, programme_info.zone)
        unit_ref, path = _unit(connection, programme_info, unit)
        by_rule = _member_rule_scores(programme_info.id, resolved)
        rows = connection.execute(
            select(Member.id, Member.name, Household.name.label("household"),
                   Unit.name.label("unit"), by_rule.c.rule_code, by_rule.c.rule_version,
                   by_rule.c.score)
            .join(Household, Household.id == Member.household_id)
            .join(Unit, Unit.id == Member.unit_id)
            .join(by_rule, by_rule.c.member_id == Member.id)
            .where(Member.programme_id == programme_info.id, *_within(Unit.path, path))
        ).all()
        definitions = _rule_definitions(connection, programme_info.id)
        ranked_households = _ranked_households(
            programme_info.id, _member_scores(programme_info.id, resolved), path)
        household_rows = connection.execute(
            select(ranked_households.c.rank, ranked_households.c.household,
                   ranked_households.c.unit, ranked_households.c.members,
                   ranked_households.c.score)
            .where(ranked_households.c.score > 0, ranked_households.c.rank <= top)
            .order_by(ranked_households.c.rank, ranked_households.c.id)
        ).all()
    award_categories = {definition["category"] for definition in definitions.values()
                        if definition["sign"] == "award"}
    categories = list(dict.fromkeys(definition["category"] for definition in definitions.values()))
    category_of = {key: definition["category"] for key, definition in definitions.items()}
    scores: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    people: dict[int, tuple[str, str, str]] = {}
    for member_id, name, household, unit_name, rule_code, rule_version, score in rows:
        category = category_of.get((rule_code, rule_version))
        if category is None:  # an entry appended directly, naming no recorded rule
            continue
        scores[category][member_id] += int(score)
        people[member_id] = (name, household, unit_name)
    honoured = []
    for category in categories:
        positive = sorted(((-score, member_id) for member_id, score in scores[category].items()
                           if score > 0))
        items = [MemberStanding(rank, mask_name(people[member_id][0]),
                                mask_name(people[member_id][1]), people[member_id][2], -score)
                 for rank, (score, member_id) in takewhile(
                     lambda ranked: ranked[0] <= top, _competition_ranks(positive))]
        if items or category in award_categories:
            honoured.append(HonourCategory(category, items))
    households = [HouseholdStanding(row.rank, mask_name(row.household), row.unit,
                                    int(row.members), int(row.score))
                  for row in household_rows]
    return HonourRoll(resolved, unit_ref, top, honoured, households)


def awards_by_month(engine: Engine, programme: str, *, unit: str | None = None,
                    last_month: date | None = None, months: int = 12) -> AwardsByMonth:
    """Points awarded to the members of `unit`'s subtree in each of `months` local months
    ending with the one holding `last_month` (default: this month), per rule category.

    Awards only: deductions take points away and are not "awarded". An
    award that was reversed counts in no month, as on the other boards, so
    the chart shows what stands. A category is the one the rule version
    applied says. One aggregate query, with the months as a CASE over the
    hashed UTC timestamps of their local midnights. Raises
    `UnknownProgramme`, `UnknownUnit`, `InvalidBoardQuery` (`months` outside
    1..36), `InvalidPeriod` (a month outside the calendar).
    """
    _check_range("months", months, 1, MAX_CHART_MONTHS)
    with read_transaction(engine) as connection:
        programme_info = get_programme(connection, programme)
        zone = programme_info.zone
        last = last_month or datetime.now(zone).date()
        if not EARLIEST_DATE <= last <= LATEST_DATE or (
                first_of_month(last, months - 1) < EARLIEST_DATE):
            raise InvalidPeriod(f"the chart's months must lie within {EARLIEST_DATE} to "
                                f"{LATEST_DATE}", field="at")
        starts = [first_of_month(last, back) for back in range(months - 1, -1, -1)]
        windows = [period_window("month", datetime.combine(start, time(12), zone), zone)
                   for start in starts]
        whole = Period(RANGE, "", starts[0], _local_date(windows[-1][1], zone), windows[0][0],
                       windows[-1][1])
        unit_ref, path = _unit(connection, programme_info, unit)
        month = case(*((Entry.occurred_at < end_at, index)
                       for index, (_start_at, end_at) in enumerate(windows)))
        rows = connection.execute(
            select(month.label("month"), Entry.rule_code, Entry.rule_version,
                   func.sum(Posting.amount_points).label("points"))
            .select_from(Posting)
            .join(Entry, and_(Entry.programme_id == Posting.programme_id,
                              Entry.seq == Posting.entry_seq))
            .join(Account, Account.id == Posting.account_id)
            .join(Member, Member.id == Account.member_id)
            .join(Unit, Unit.id == Member.unit_id)
            .where(Posting.programme_id == programme_info.id, Account.kind == "member",
                   Entry.kind == "award",
                   Posting.entry_seq.in_(_scoring_entries(programme_info.id, whole)),
                   *_within(Unit.path, path))
            .group_by(month, Entry.rule_code, Entry.rule_version)
        ).all()
        definitions = _rule_definitions(
            connection, programme_info.id,
            {row.rule_code for row in rows if row.rule_code is not None})
    by_month: list[dict[str | None, int]] = [defaultdict(int) for _ in starts]
    for row in rows:
        definition = definitions.get((row.rule_code, row.rule_version))
        category = definition["category"] if definition else None
        by_month[row.month][category] += int(row.points)
    present = {category for points in by_month for category, total in points.items() if total}
    categories: list[str | None] = [
        category for category in dict.fromkeys(definition["category"]
                                               for definition in definitions.values())
        if category in present]
    if None in present:
        categories.append(None)
    return AwardsByMonth(unit_ref, [MonthAwards(start, dict(points))
                                    for start, points in zip(starts, by_month, strict=True)],
                         categories)


def first_of_month(day: date, back: int = 0) -> date:
    """The first day of the month `back` months before the one holding `day`."""
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


# -- queries ------------------------------------------------------------------------------


def _scoring_entries(programme_id: int, period: Period):
    """The `seq`s of the entries that make score in `period`: unreversed awards and deductions.

    Leaving out reversed entries (rather than adding their reversals) puts a
    correction where the mistake was, and over the lifetime gives the same
    sum as the `balances` cache, which adds the reversals. Used as an IN
    subquery, it is evaluated on its own, from the entries table alone, and
    postings are then found by primary key: SQLite, which has no statistics
    here, would otherwise start from the postings and read them all.
    """
    reversal = aliased(Entry)
    return select(Entry.seq).where(
        Entry.programme_id == programme_id,
        Entry.kind.in_(SCORE_KINDS),
        ~exists().where(reversal.programme_id == Entry.programme_id,
                        reversal.reverses_seq == Entry.seq),
        *_within_period(Entry.occurred_at, period),
    )


def _member_scores(programme_id: int, period: Period):
    """Every member's score in `period`, one row per member (0 where nothing was scored).

    Over the lifetime this is the `balances` cache, which `_write` keeps in
    the append transaction and `ledger.verify` recomputes from postings; it
    equals the sum over postings exactly (tests/audit/test_boards.py checks
    that), and reading it costs one row per member instead of every posting.
    Rows start from the member accounts (every member owns exactly one), so
    the boards then join members by primary key: an outer join from members
    to a derived table is what SQLite may scan once per member.
    """
    if period.start_at is None:
        return (
            select(Account.member_id, Balance.score_points.label("score"))
            .join(Balance, Balance.account_id == Account.id)
            .where(Account.programme_id == programme_id, Account.kind == "member")
            .subquery("member_scores")
        )
    sums = (
        select(Posting.account_id, func.sum(Posting.amount_points).label("score"))
        .where(Posting.programme_id == programme_id,
               Posting.entry_seq.in_(_scoring_entries(programme_id, period)))
        .group_by(Posting.account_id)
        .subquery("account_scores")
    )
    return (
        select(Account.member_id, func.coalesce(sums.c.score, 0).label("score"))
        .outerjoin(sums, sums.c.account_id == Account.id)
        .where(Account.programme_id == programme_id, Account.kind == "member")
        .subquery("member_scores")
    )


def _member_rule_scores(programme_id: int, period: Period):
    """Each member's score in `period` per rule version applied (entries naming a rule)."""
    return (
        select(Account.member_id, Entry.rule_code, Entry.rule_version,
               func.sum(Posting.amount_points).label("score"))
        .select_from(Posting)
        .join(Account, Account.id == Posting.account_id)
        .join(Entry, and_(Entry.programme_id == Posting.programme_id,
                          Entry.seq == Posting.entry_seq))
        .where(Posting.programme_id == programme_id, Account.kind == "member",
               Posting.entry_seq.in_(_scoring_entries(programme_id, period)),
               Entry.rule_code.is_not(None))
        .group_by(Account.member_id, Entry.rule_code, Entry.rule_version)
        .subquery("member_rule_scores")
    )


def _ranked_members(programme_id: int, scores, path: str | None):
    return (
        select(Member.id, Member.name, Household.name.label("household"),
               Unit.name.label("unit"), scores.c.score,
               func.rank().over(order_by=scores.c.score.desc()).label("rank"))
        .select_from(scores)
        .join(Member, Member.id == scores.c.member_id)
        .join(Household, Household.id == Member.household_id)
        .join(Unit, Unit.id == Member.unit_id)
        .where(Member.programme_id == programme_id, *_within(Unit.path, path))
        .subquery("ranked_members")
    )


def _ranked_households(programme_id: int, scores, path: str | None):
    """Households of the subtree `path` that have members, by the sum of their members' scores."""
    score = func.sum(scores.c.score)
    return (
        select(Household.id, Household.name.label("household"), Unit.name.label("unit"),
               func.count().label("members"), score.label("score"),
               func.rank().over(order_by=score.desc()).label("rank"))
        .select_from(scores)
        .join(Member, Member.id == scores.c.member_id)
        .join(Household, Household.id == Member.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Household.programme_id == programme_id, *_within(Unit.path, path))
        .group_by(Household.id, Household.name, Unit.name)
        .subquery("ranked_households")
    )


def _within_period(column, period: Period) -> list:
    """Conditions keeping `column` (hashed UTC timestamps; text order is time order) in period."""
    if period.start_at is None:
        return []
    return [column >= period.start_at, column < period.end_at]


def _within(path_column, path: str | None) -> list:
    """Conditions keeping a unit path within the subtree `path` (None: the whole programme).

    By prefix with `substr`, not `LIKE`: `_` is both a code character and a
    `LIKE` wildcard.
    """
    if path is None:
        return []
    return [func.substr(path_column, 1, len(path)) == path]


def _unit(connection: Connection, programme: ProgrammeInfo,
          code: str | None) -> tuple[UnitRef | None, str | None]:
    """The unit `code` and its path (None, None for the whole programme); `UnknownUnit`."""
    if code is None:
        return None, None
    row = connection.execute(
        select(Unit.name, Unit.path).where(Unit.programme_id == programme.id, Unit.code == code)
    ).first()
    if row is None:
        raise errors.UnknownUnit(f"no unit {code!r}", unit=code)
    return UnitRef(code, row.name), row.path


def _rule_definitions(connection: Connection, programme_id: int,
                      codes: Iterable[str] | None = None) -> dict[tuple[str, int], dict]:
    """Rule definitions by (code, version), of `codes` only when given, in the order recorded.

    Recorded order is the catalog's order, which is how a programme lists its
    categories (会议我能到, 发展我带头, ...), so the honour roll keeps it.
    """
    query = select(RuleVersion.code, RuleVersion.version, RuleVersion.definition_json).where(
        RuleVersion.programme_id == programme_id).order_by(RuleVersion.entry_seq)
    if codes is not None:
        query = query.where(RuleVersion.code.in_(sorted(codes)))
    return {(code, version): json.loads(definition)
            for code, version, definition in connection.execute(query)}


def _rule_names(connection: Connection, programme_id: int,
                codes: set[str]) -> dict[tuple[str, int | None], tuple[str, str]]:
    """(name, category) by (code, version), and by (code, None) for the newest version."""
    if not codes:
        return {}
    names: dict[tuple[str, int | None], tuple[str, str]] = {}
    newest: dict[str, int] = {}
    for (code, version), definition in sorted(
            _rule_definitions(connection, programme_id, codes).items()):
        names[(code, version)] = (definition["name"], definition["category"])
        if version >= newest.get(code, 0):
            newest[code] = version
            names[(code, None)] = names[(code, version)]
    return names


def _competition_ranks(ordered: list[tuple[int, int]]) -> Iterator[tuple[int, tuple[int, int]]]:
    """(rank, item) for (key, ...) items sorted best first: equal keys share (1, 2, 2, 4)."""
    rank = 0
    previous = None
    for position, item in enumerate(ordered, start=1):
        if item[0] != previous:
            rank, previous = position, item[0]
        yield rank, item


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise InvalidBoardQuery(f"{name} must be a whole number from {low} to {high}",
                                field=name)
