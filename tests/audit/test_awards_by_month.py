"""Points awarded per month and per category (`audit.boards.awards_by_month`), the data of the
boards' chart. Uses the village of tests/audit/test_boards.py.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date

import pytest

from audit.boards import InvalidBoardQuery, InvalidPeriod, awards_by_month, first_of_month
from ledger import errors
from ledger.accounts import ISSUANCE, member_account
from ledger.chain import Posting, append

from . import test_boards
from .test_boards import BoardTown, shanghai

board = test_boards.board
"""The village of tests/audit/test_boards.py, as a fixture of these tests too."""


def chart(town: BoardTown, **kwargs):
    return awards_by_month(town.engine, town.code, last_month=date(2026, 11, 1), **kwargs)


def test_each_award_counts_in_its_local_month_and_category(board):
    board.award("zsf", "meeting", shanghai(2026, 10, 31, 23, 30))  # 15:30 UTC, still October
    board.award("zsf", "meeting", shanghai(2026, 11, 1, 0, 30))  # 16:30 UTC on October 31st
    board.award("zs", "volunteer", shanghai(2026, 11, 20))
    board.award("ls", "excel", shanghai(2026, 9, 5))
    board.award("zs", "litter", shanghai(2026, 11, 21))  # a deduction: not awarded

    found = chart(board, months=3)

    assert [month.start for month in found.months] == [date(2026, 9, 1), date(2026, 10, 1),
                                                       date(2026, 11, 1)]
    assert [month.by_category for month in found.months] == [
        {"优秀我来当": 10}, {"会议我能到": 5}, {"会议我能到": 5, "活动我参加": 3}]
    assert [month.total_points for month in found.months] == [10, 5, 8]
    assert found.categories == ["会议我能到", "活动我参加", "优秀我来当"]  # the catalog's order


def test_a_reversed_award_counts_nowhere_and_awards_naming_no_rule_are_other(board):
    kept = board.award("oynn", "meeting", shanghai(2026, 11, 3)).entry
    mistaken = board.award("zl", "excel", shanghai(2026, 11, 4)).entry
    board.reverse(mistaken.seq)
    append(board.engine, board.code, kind="award", actor="system:test",
           occurred_at=shanghai(2026, 11, 5),
           postings=[Posting(member_account("ww"), 7), Posting(ISSUANCE, -7)])

    found = chart(board, months=1)

    assert kept.seq and found.months[-1].by_category == {"会议我能到": 5, None: 7}
    assert found.categories == ["会议我能到", None]


def test_a_unit_chart_holds_its_subtree_only(board):
    board.award("zsf", "meeting", shanghai(2026, 11, 3))  # east
    board.award("oynn", "volunteer", shanghai(2026, 11, 3))  # east-g1, under east
    board.award("zl", "excel", shanghai(2026, 11, 3))  # east2, a sibling
    board.award("ls", "excel", shanghai(2026, 11, 3))  # west

    east = chart(board, unit="east", months=1)

    assert east.unit.name == "东村"
    assert east.months[0].by_category == {"会议我能到": 5, "活动我参加": 3}
    assert chart(board, unit="town", months=1).months[0].total_points == 28


def test_months_without_awards_are_there_with_nothing(board):
    found = chart(board)
    assert len(found.months) == 12 and found.categories == []
    assert found.months[0].start == date(2025, 12, 1)
    assert all(month.by_category == {} for month in found.months)


def test_bad_chart_queries_are_refused(board):
    with pytest.raises(InvalidBoardQuery):
        chart(board, months=0)
    with pytest.raises(InvalidBoardQuery):
        chart(board, months=37)
    with pytest.raises(InvalidPeriod):
        awards_by_month(board.engine, board.code, last_month=date(1970, 3, 1), months=12)
    with pytest.raises(errors.UnknownUnit):
        chart(board, unit="nowhere")


@pytest.mark.parametrize(("day", "back", "first"), [
    (date(2026, 11, 30), 0, date(2026, 11, 1)),
    (date(2026, 3, 15), 2, date(2026, 1, 1)),
    (date(2026, 1, 31), 1, date(2025, 12, 1)),
    (date(2026, 1, 1), 25, date(2023, 12, 1)),
])
def test_first_of_month_counts_back_across_years(day, back, first):
    assert first_of_month(day, back) == first
