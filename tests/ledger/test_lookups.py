"""The ledger's lookups for the pages: members by name, household or unit within subtrees;
member names by code; entries by idempotency key; the reversal of an entry; why a sign-in
sheet cannot be read (`InvalidSheet.details['reason']`).

Database tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from ledger import errors
from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append, entries_by_key, reversal_of, reverse
from ledger.organisation import (
    create_household,
    create_member,
    create_unit,
    member_names,
    search_members,
)
from ledger.sheets import InvalidSheet, parse_sheet

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def two_villages(village):
    create_unit(village.engine, village.code, "east", "东村_100%", "village")
    create_household(village.engine, village.code, "e1", "东一户", "east")
    create_member(village.engine, village.code, "e0", "王五", "e1")
    return village


def codes(matches) -> list[str]:
    return [match.code for match in matches]


def test_search_matches_names_households_and_units_within_subtrees(two_villages):
    engine, code = two_villages.engine, two_villages.code

    def search(text, subtrees=None):
        return codes(search_members(engine, code, text, subtrees, limit=10))

    assert search("居民1") == ["m1"]
    assert search("一户") == ["e0", "m0", "m2"]  # 东一户 and 一户, by unit
    assert search("EAST") == ["e0"]  # a unit's code, any case
    assert search("东村") == ["e0"]
    assert search("_100%") == ["e0"] and search("%") == ["e0"]  # literal, not wildcards
    assert search("一户", ["/village/"]) == ["m0", "m2"]
    assert search("王五", ["/village/"]) == [] and search("王五", []) == []
    assert len(search_members(engine, code, "居民", None, limit=2)) == 2
    found = search_members(engine, code, "王五", None, limit=1)[0]
    assert (found.name, found.household_name, found.unit_name) == ("王五", "东一户", "东村_100%")


@pytest.mark.parametrize("text", ["", "   ", "x" * 51])
def test_search_refuses_empty_or_long_text(village, text):
    with pytest.raises(errors.InvalidEntry):
        search_members(village.engine, village.code, text, None, limit=5)


def test_member_names_leave_out_codes_that_are_not_members(village):
    assert member_names(village.engine, village.code, ["m1", "m0", "nobody", "m1"]) == {
        "m0": "居民0", "m1": "居民1"}
    assert member_names(village.engine, village.code, []) == {}


def test_entries_by_key_and_the_reversal_of_an_entry(village):
    engine, code = village.engine, village.code
    posted = append(engine, code, kind="award", actor="system:test", idempotency_key="k:1",
                    postings=[Posting(village.account(0), 5), Posting(ISSUANCE, -5)]).entry

    assert entries_by_key(engine, code, ["k:1", "k:2", "k:1"]) == {"k:1": posted.seq}
    assert reversal_of(engine, code, posted.seq) is None
    undone = reverse(engine, code, posted.seq, actor="system:test", memo="wrong").entry
    assert reversal_of(engine, code, posted.seq) == undone.seq


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty"),
    ("成员,规则\n".encode(), "no_lines"),
    ("谁,什么\nm0,meeting\n".encode(), "missing_columns"),
    (b"\xff\xfe\x00garbage\x81", "not_text"),
])
def test_an_unreadable_sheet_says_why(content, reason):
    with pytest.raises(InvalidSheet) as refused:
        parse_sheet(content, "sheet.csv", SHANGHAI)
    assert refused.value.details["reason"] == reason


def test_an_unreadable_line_says_why_and_where():
    lines = parse_sheet("成员,规则,数量,日期\nm0,,,\nm1,r,many,\nm2,r,,soon\n".encode(),
                        "sheet.csv", SHANGHAI)
    assert [(line.error.details["reason"], line.error.details["line"]) for line in lines] == [
        ("incomplete_line", 2), ("bad_quantity", 3), ("bad_date", 4)]
    assert lines[1].error.details["value"] == "many"
