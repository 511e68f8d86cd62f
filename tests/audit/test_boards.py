"""The three boards (`audit.boards`): standings, public disclosure and the honour roll.

The village of these tests, in Asia/Shanghai:

    /town/                   测试镇
    /town/east/              东村: household zhang 张家 (张三丰 zsf, 张三 zs)
    /town/east/east-g1/      一组: household ouyang 欧阳家 (欧阳娜娜 oynn)
    /town/east2/             东二村: household zhao 赵家 (赵六 zl), a sibling whose code
                             starts like east's
    /town/west/              西村: household li 李家 (李四 ls, 王五 ww)

Every award goes through `ledger.awards.award`, so it is checked and
posted as an organiser's would be.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from audit.boards import (
    InvalidBoardQuery,
    InvalidPeriod,
    PeriodQuery,
    disclosure,
    honour_roll,
    mask_name,
    redact,
    resolve_period,
    standings,
)
from ledger import errors
from ledger.accounts import member_account
from ledger.awards import AwardRequest, award, reverse_award
from ledger.claims import approve
from ledger.models import Programme
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme
from ledger.rules import set_rule
from ledger.statements import balance_of
from redemption.vouchers import issue_voucher

SHANGHAI = ZoneInfo("Asia/Shanghai")
ORGANISER = "organiser:town"
REVIEWER = "reviewer:town"
MEMBERS = {"zsf": "张三丰", "zs": "张三", "oynn": "欧阳娜娜", "ls": "李四", "ww": "王五",
           "zl": "赵六"}
MASKED = {"zsf": "张*丰", "zs": "张*", "oynn": "欧**娜", "ls": "李*", "ww": "王*", "zl": "赵*"}
RULES = [
    {"code": "meeting", "name": "参加会议", "category": "会议我能到", "sign": "award", "points": 5},
    {"code": "volunteer", "name": "志愿服务", "category": "活动我参加", "sign": "award",
     "points": 3},
    {"code": "excel", "name": "优秀家庭", "category": "优秀我来当", "sign": "award", "points": 10},
    {"code": "litter", "name": "乱扔垃圾", "category": "环境卫生", "sign": "deduction",
     "points": 2},
    {"code": "honour", "name": "见义勇为", "category": "优秀我来当", "sign": "award", "points": 20,
     "approval": "always"},
    {"code": "absent", "name": "活动缺席", "category": "活动我参加", "sign": "deduction",
     "points": 4},
]


def shanghai(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


NOV = shanghai(2026, 11, 10)
ALL_TIME = PeriodQuery("range", start=date(1970, 1, 1), end=date(9998, 12, 31))
"""Every possible entry, counted from postings: what the lifetime board (the cache) must equal."""


@dataclass
class BoardTown:
    engine: Engine
    code: str

    def award(self, member: str, rule: str, when: datetime = NOV, memo: str = ""):
        return award(self.engine, self.code,
                     AwardRequest(member=member, rule=rule, occurred_at=when, memo=memo),
                     actor=ORGANISER)

    def reverse(self, seq: int, memo: str = "entered twice"):
        return reverse_award(self.engine, self.code, seq, actor=REVIEWER, memo=memo).entry

    def standings(self, **kwargs):
        return standings(self.engine, self.code, **kwargs)

    def disclosure(self, **kwargs):
        return disclosure(self.engine, self.code, **kwargs)

    def honour(self, **kwargs):
        return honour_roll(self.engine, self.code, **kwargs)


def make_board_town(engine: Engine) -> BoardTown:
    code = f"board-{uuid.uuid4().hex[:10]}"
    create_programme(engine, code, f"Boards {code}")
    create_unit(engine, code, "town", "测试镇", "town")
    create_unit(engine, code, "east", "东村", "village", "town")
    create_unit(engine, code, "east-g1", "一组", "group", "east")
    create_unit(engine, code, "east2", "东二村", "village", "town")
    create_unit(engine, code, "west", "西村", "village", "town")
    create_household(engine, code, "zhang", "张家", "east")
    create_household(engine, code, "ouyang", "欧阳家", "east-g1")
    create_household(engine, code, "zhao", "赵家", "east2")
    create_household(engine, code, "li", "李家", "west")
    for member, household in (("zsf", "zhang"), ("zs", "zhang"), ("oynn", "ouyang"),
                              ("ls", "li"), ("ww", "li"), ("zl", "zhao")):
        create_member(engine, code, member, MEMBERS[member], household)
    grant_role(engine, code, ORGANISER, "organiser", "town")
    grant_role(engine, code, REVIEWER, "reviewer", "town")
    for rule in RULES:
        set_rule(engine, code, rule, "system:test")
    return BoardTown(engine, code)


@pytest.fixture
def board(engine) -> BoardTown:
    return make_board_town(engine)


@pytest.fixture
def scored(board) -> BoardTown:
    """November: ls 10; zsf 8 and zs 8 (a tie); oynn 5; zl 3; ww nothing."""
    board.award("ls", "excel")
    board.award("zsf", "meeting")
    board.award("zsf", "volunteer")
    board.award("zs", "excel")
    board.award("zs", "litter")
    board.award("oynn", "meeting")
    board.award("zl", "volunteer")
    return board


def ranking(items) -> list[tuple[int, str, int]]:
    return [(item.rank, item.name, item.score_points) for item in items]


# -- masking --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "masked"), [
    ("张三丰", "张*丰"),
    ("欧阳娜娜", "欧**娜"),
    ("张三", "张*"),
    ("张", "*"),
    ("", "*"),
    ("   ", "*"),
    ("  张三  ", "张*"),
    ("司马相如君", "司***君"),
    ("John Smith", "J**n S***h"),
    ("Li  Na", "L* N*"),
    ("Jean-Luc Picard", "J******c P****d"),
    ("A B", "* *"),
    ("买买提·艾力", "买*提·艾*"),
    ("𠀀𠀁𠀂", "𠀀*𠀂"),
])
def test_names_keep_only_their_first_and_last_character(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(("memo", "redacted"), [
    ("张三丰主持会议", "张*丰主持会议"),
    ("张家和张三丰家都到了", "张*和张*丰家都到了"),
    ("张三丰的张", "张*丰的张"),
    ("no names here", "no names here"),
])
def test_memos_mask_the_members_own_names(memo, redacted):
    assert redact(memo, "张三丰", "张家", "张") == redacted


def test_a_masked_name_never_holds_a_middle_character():
    name = "欧阳修文明"
    assert not set(mask_name(name)[1:-1]) - {"*"}
    assert len(mask_name(name)) == len(name)


# -- periods --------------------------------------------------------------------------------


def test_named_periods_are_local_calendar_periods():
    month = resolve_period(PeriodQuery("month", at=date(2026, 10, 31)), SHANGHAI)
    assert (month.label, month.start, month.end) == ("2026-10", date(2026, 10, 1),
                                                      date(2026, 11, 1))
    assert (month.start_at, month.end_at) == ("2026-09-30T16:00:00.000000Z",
                                              "2026-10-31T16:00:00.000000Z")
    week = resolve_period(PeriodQuery("week", at=date(2026, 11, 29)), SHANGHAI)
    assert (week.start, week.end) == (date(2026, 11, 23), date(2026, 11, 30))
    year = resolve_period(PeriodQuery("year", at=date(2026, 3, 1)), SHANGHAI)
    assert (year.label, year.start, year.end) == ("2026", date(2026, 1, 1), date(2027, 1, 1))
    span = resolve_period(PeriodQuery("range", start=date(2026, 11, 1), end=date(2026, 11, 8)),
                          SHANGHAI)
    assert (span.label, span.start_at) == ("2026-11-01 to 2026-11-07",
                                           "2026-10-31T16:00:00.000000Z")
    lifetime = resolve_period(PeriodQuery("lifetime", at=date(2026, 1, 1)), SHANGHAI)
    assert (lifetime.start_at, lifetime.end_at, lifetime.start) == (None, None, None)


def test_a_period_defaults_to_today_in_the_programmes_time_zone():
    today = resolve_period(PeriodQuery("day"), SHANGHAI, today=date(2026, 5, 4))
    assert today.start == date(2026, 5, 4)
    assert resolve_period(PeriodQuery("day"), SHANGHAI).start == datetime.now(SHANGHAI).date()


@pytest.mark.parametrize(("query", "field"), [
    (PeriodQuery("fortnight"), "period"),
    (PeriodQuery("range", start=date(2026, 1, 1)), "to"),
    (PeriodQuery("range", end=date(2026, 1, 1)), "from"),
    (PeriodQuery("range", start=date(2026, 1, 2), end=date(2026, 1, 2)), "to"),
    (PeriodQuery("range", start=date(2026, 1, 1), end=date(2026, 1, 2), at=date(2026, 1, 1)),
     "at"),
    (PeriodQuery("month", start=date(2026, 1, 1)), "from"),
    (PeriodQuery("day", end=date(2026, 1, 1)), "to"),
    (PeriodQuery("range", start=date(2026, 1, 1), end=date(9999, 1, 1)), "to"),
    (PeriodQuery("year", at=date(9999, 6, 1)), "at"),
    (PeriodQuery("day", at=date(1, 1, 1)), "at"),
])
def test_a_period_that_covers_nothing_sensible_is_refused(query, field):
    with pytest.raises(InvalidPeriod) as refused:
        resolve_period(query, SHANGHAI)
    assert refused.value.code == "invalid_period"
    assert refused.value.details["field"] == field


# -- 积分榜 standings ------------------------------------------------------------------------


def test_members_rank_by_score_and_ties_share_a_rank(scored):
    board = scored.standings(period=PeriodQuery("month", at=date(2026, 11, 1)))
    assert ranking(board.items) == [(1, "李*", 10), (2, "张*丰", 8), (2, "张*", 8),
                                    (4, "欧**娜", 5), (5, "赵*", 3), (6, "王*", 0)]
    assert [item.household for item in board.items] == ["李*", "张*", "张*", "欧*家", "赵*",
                                                        "李*"]
    assert [item.unit for item in board.items][:2] == ["西村", "东村"]
    assert (board.by, board.unit, board.next_offset, board.period.label) == (
        "member", None, None, "2026-11")


def test_standings_come_in_pages_that_keep_their_ranks(scored):
    first = scored.standings(limit=2)
    second = scored.standings(limit=2, offset=first.next_offset)
    last = scored.standings(limit=2, offset=second.next_offset)
    assert ranking(first.items) == [(1, "李*", 10), (2, "张*丰", 8)]
    assert ranking(second.items) == [(2, "张*", 8), (4, "欧**娜", 5)]
    assert ranking(last.items) == [(5, "赵*", 3), (6, "王*", 0)]
    assert (first.next_offset, second.next_offset, last.next_offset) == (2, 4, None)


def test_households_rank_by_the_sum_of_their_members_scores(scored):
    scored.award("ww", "meeting")
    board = scored.standings(by="household")
    assert [(item.rank, item.household, item.members, item.score_points)
            for item in board.items] == [(1, "张*", 2, 16), (2, "李*", 2, 15), (3, "欧*家", 1, 5),
                                         (4, "赵*", 1, 3)]
    scored.award("zl", "excel")
    scored.award("zl", "volunteer")
    tied = scored.standings(by="household")
    assert [(item.rank, item.household) for item in tied.items] == [
        (1, "张*"), (1, "赵*"), (3, "李*"), (4, "欧*家")]


def test_a_unit_board_holds_its_whole_subtree_and_nothing_beside_it(scored):
    east = scored.standings(unit="east")
    assert ranking(east.items) == [(1, "张*丰", 8), (1, "张*", 8), (3, "欧**娜", 5)]
    assert (east.unit.code, east.unit.name) == ("east", "东村")
    assert ranking(scored.standings(unit="east-g1").items) == [(1, "欧**娜", 5)]
    assert [item.household for item in scored.standings(unit="east", by="household").items] == [
        "张*", "欧*家"]
    assert ranking(scored.standings(unit="west").items) == [(1, "李*", 10), (2, "王*", 0)]
    with pytest.raises(errors.UnknownUnit):
        scored.standings(unit="north")


def test_an_award_late_on_the_last_evening_of_a_month_counts_in_that_month(board):
    board.award("zsf", "meeting", when=shanghai(2026, 10, 31, 23, 30))  # 15:30 UTC, Oct 31
    board.award("zs", "excel", when=shanghai(2026, 11, 1, 0, 30))  # 16:30 UTC, still Oct 31
    october = board.standings(period=PeriodQuery("month", at=date(2026, 10, 1)))
    november = board.standings(period=PeriodQuery("month", at=date(2026, 11, 30)))
    assert ranking(october.items)[0] == (1, "张*丰", 5)
    assert [item.score_points for item in october.items if item.name == "张*"] == [0]
    assert ranking(november.items)[0] == (1, "张*", 10)
    assert [item.score_points for item in november.items if item.name == "张*丰"] == [0]
    last_day = board.standings(period=PeriodQuery("day", at=date(2026, 10, 31)))
    assert ranking(last_day.items)[0] == (1, "张*丰", 5)
    span = board.standings(period=PeriodQuery("range", start=date(2026, 10, 31),
                                              end=date(2026, 11, 1)))
    assert ranking(span.items)[:2] == [(1, "张*丰", 5), (2, "张*", 0)]


def test_a_reversed_award_counts_in_no_period_and_the_reversal_is_disclosed(board):
    award_entry = board.award("zsf", "meeting", when=shanghai(2026, 10, 20),
                              memo="张三丰参加十月村民会议").entry
    board.award("zs", "volunteer", when=shanghai(2026, 10, 21))
    reversal = board.reverse(award_entry.seq, memo="重复录入")
    october = board.standings(period=PeriodQuery("month", at=date(2026, 10, 1)))
    this_month = board.standings(period=PeriodQuery("month"))
    assert ranking(october.items)[:2] == [(1, "张*", 3), (2, "张*丰", 0)]
    assert {item.score_points for item in this_month.items} == {0}
    assert ranking(board.standings().items)[:2] == [(1, "张*", 3), (2, "张*丰", 0)]

    lines = board.disclosure().items
    assert [(line.seq, line.kind, line.points, line.reversed) for line in lines] == [
        (reversal.seq, "reversal", -5, False),
        (award_entry.seq + 1, "award", 3, False),
        (award_entry.seq, "award", 5, True),
    ]
    assert (lines[0].reverses, lines[0].memo, lines[0].rule_name) == (
        award_entry.seq, "重复录入", "参加会议")
    assert (lines[2].reversed_by, lines[2].memo) == (reversal.seq, "张*丰参加十月村民会议")
    in_october = board.disclosure(period=PeriodQuery("month", at=date(2026, 10, 1))).items
    assert [line.seq for line in in_october] == [award_entry.seq + 1, award_entry.seq]


def test_lifetime_standings_agree_with_the_cached_scores(scored):
    deduction = scored.award("ls", "litter", when=shanghai(2026, 9, 1)).entry
    scored.reverse(deduction.seq, memo="不是他扔的")
    scored.reverse(scored.award("oynn", "excel", when=shanghai(2026, 8, 1)).entry.seq)
    scored.award("ww", "litter", when=shanghai(2025, 12, 31, 23, 59))
    scored.award("ww", "meeting", when=shanghai(2024, 2, 29))
    issue_voucher(scored.engine, scored.code, "ls", actor="system:test", points=4)
    lifetime = {item.name: item.score_points for item in scored.standings().items}
    from_postings = {item.name: item.score_points
                     for item in scored.standings(period=ALL_TIME).items}
    cached = {MASKED[code]: balance_of(scored.engine, scored.code,
                                       member_account(code)).score_points
              for code in MEMBERS}
    assert lifetime == from_postings == cached
    assert lifetime["李*"] == 10  # the voucher took balance, not score
    assert balance_of(scored.engine, scored.code, member_account("ls")).balance_points == 6
    households = {item.household: item.score_points
                  for item in scored.standings(by="household").items}
    assert households == {item.household: item.score_points
                          for item in scored.standings(by="household", period=ALL_TIME).items}
    assert households == {"张*": cached["张*丰"] + cached["张*"], "欧*家": cached["欧**娜"],
                          "李*": cached["李*"] + cached["王*"], "赵*": cached["赵*"]}


def test_bad_board_queries_are_refused(board):
    for kwargs, field in (({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                          ({"offset": -1}, "offset"), ({"by": "unit"}, "by")):
        with pytest.raises(InvalidBoardQuery) as refused:
            board.standings(**kwargs)
        assert refused.value.details["field"] == field
    with pytest.raises(InvalidBoardQuery):
        board.disclosure(limit=201)
    with pytest.raises(InvalidBoardQuery):
        board.honour(top=0)
    with pytest.raises(InvalidPeriod):
        board.honour(period=PeriodQuery("quarter"))
    with pytest.raises(errors.UnknownProgramme):
        standings(board.engine, "no-such-programme")


# -- 公示榜 public disclosure ----------------------------------------------------------------


def test_disclosure_lists_awards_and_deductions_newest_first_with_masked_names(scored):
    page = scored.disclosure(limit=3)
    assert [(line.name, line.household, line.rule, line.rule_name, line.category, line.points)
            for line in page.items] == [
        ("赵*", "赵*", "volunteer", "志愿服务", "活动我参加", 3),
        ("欧**娜", "欧*家", "meeting", "参加会议", "会议我能到", 5),
        ("张*", "张*", "litter", "乱扔垃圾", "环境卫生", -2),
    ]
    line = page.items[0]
    assert (line.kind, line.occurred_at, line.occurred_on, line.unit) == (
        "award", "2026-11-10T02:00:00.000000Z", date(2026, 11, 10), "东二村")
    rest = scored.disclosure(limit=3, before=page.next_before)
    last = scored.disclosure(limit=3, before=rest.next_before)
    seqs = [line.seq for page in (page, rest, last) for line in page.items]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 7
    assert last.next_before is None


def test_disclosure_shows_only_score_entries_of_the_unit_and_period(scored):
    issue_voucher(scored.engine, scored.code, "ls", actor="system:test", points=4)
    scored.award("ls", "meeting", when=shanghai(2026, 10, 5))
    west = scored.disclosure(unit="west")
    assert [(line.name, line.kind, line.points) for line in west.items] == [
        ("李*", "award", 5), ("李*", "award", 10)]
    october = scored.disclosure(period=PeriodQuery("month", at=date(2026, 10, 5)))
    assert [(line.name, line.points) for line in october.items] == [("李*", 5)]
    assert scored.disclosure(unit="east-g1").items[0].name == "欧**娜"


def test_claims_in_their_notice_window_are_disclosed(board):
    with board.engine.begin() as connection:
        connection.execute(update(Programme).where(Programme.code == board.code)
                           .values(notice_days=7))
    pending = board.award("oynn", "honour", memo="救起落水儿童")
    in_notice = board.award("ls", "honour", memo="扑灭山火")
    approve(board.engine, board.code, in_notice.claim_id, reviewer=REVIEWER)
    page = board.disclosure()
    assert page.items == []
    assert [(claim.claim, claim.name, claim.household, claim.rule_name, claim.points,
             claim.memo) for claim in page.in_notice] == [
        (in_notice.claim_id, "李*", "李*", "见义勇为", 20, "扑灭山火")]
    assert page.in_notice[0].notice_until > page.in_notice[0].occurred_at
    assert board.disclosure(unit="east").in_notice == []
    assert pending.claim_id != in_notice.claim_id


# -- 光荣榜 honour roll ----------------------------------------------------------------------


def test_the_honour_roll_ranks_the_best_per_award_category(scored):
    scored.award("zl", "meeting")
    roll = scored.honour(period=PeriodQuery("month", at=date(2026, 11, 1)), top=1)
    by_category = {category.category: [(item.rank, item.name, item.score_points)
                                        for item in category.items]
                   for category in roll.categories}
    assert by_category == {
        "会议我能到": [(1, "张*丰", 5), (1, "欧**娜", 5), (1, "赵*", 5)],
        "活动我参加": [(1, "张*丰", 3), (1, "赵*", 3)],
        "优秀我来当": [(1, "张*", 10), (1, "李*", 10)],
    }
    assert [(item.rank, item.household, item.score_points) for item in roll.households] == [
        (1, "张*", 16)]
    wider = scored.honour(period=PeriodQuery("month", at=date(2026, 11, 1)), top=3)
    assert [(item.rank, item.household, item.score_points) for item in wider.households] == [
        (1, "张*", 16), (2, "李*", 10), (3, "赵*", 8)]


def test_deductions_count_against_the_category_of_their_rule(scored):
    scored.award("zsf", "absent")  # 活动我参加: 3 - 4
    roll = scored.honour(period=PeriodQuery("month", at=date(2026, 11, 1)))
    volunteering = next(category for category in roll.categories
                        if category.category == "活动我参加")
    assert [(item.rank, item.name, item.score_points) for item in volunteering.items] == [
        (1, "赵*", 3)]
    meetings = next(category for category in roll.categories if category.category == "会议我能到")
    assert [(item.name, item.score_points) for item in meetings.items] == [
        ("张*丰", 5), ("欧**娜", 5)]


def test_the_honour_roll_of_a_quiet_month_names_categories_and_nobody(scored):
    scored.award("zs", "litter", when=shanghai(2026, 9, 3))
    roll = scored.honour(period=PeriodQuery("month", at=date(2026, 9, 1)))
    assert [(category.category, category.items) for category in roll.categories] == [
        ("会议我能到", []), ("活动我参加", []), ("优秀我来当", [])]
    assert roll.households == []
    assert roll.period.label == "2026-09"


def test_the_honour_roll_of_a_unit_holds_its_subtree(scored):
    roll = scored.honour(unit="east", period=PeriodQuery("lifetime"), top=5)
    names = {item.name for category in roll.categories for item in category.items}
    assert names == {"张*丰", "张*", "欧**娜"}
    assert [item.household for item in roll.households] == ["张*", "欧*家"]
