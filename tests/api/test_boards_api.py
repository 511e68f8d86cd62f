"""The boards over HTTP: public, masked, and refusing bad parameters with stable codes.

The town of tests/api/conftest.py (town → east, west; households he 东一户
and hw 西一户), with three residents given real names here: 张三丰
(zhang-sanfeng) and 欧阳娜娜 (ouyang-nana) in east, 李四 (li-si) in west.
Awards go through `POST /awards`, reversals through
`POST /entries/{seq}/reversal`, as staff would make them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from ledger.models import Programme
from ledger.organisation import create_member
from ledger.storage import write_transaction

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENTS = {"zhang-sanfeng": ("张三丰", "he"), "ouyang-nana": ("欧阳娜娜", "he"),
             "li-si": ("李四", "hw")}
MEMBER_CODES = ("zhang-sanfeng", "ouyang-nana", "li-si", "e0", "e1", "e2", "w0")
BOARDS = ("/boards/standings", "/boards/standings?by=household", "/boards/disclosure",
          "/boards/honour", "/boards/honour?period=lifetime", "/boards/disclosure?unit=east",
          "/boards/standings?period=month&unit=west")


def engine_of(town):
    return town.client.application.extensions["jifen"].engine


def when(days_ago: int) -> str:
    return (datetime.now(SHANGHAI) - timedelta(days=days_ago)).isoformat()


def public(town, path: str):
    """A board, fetched as the public does: with no key at all."""
    return town.client.get(town.url(path))


def award(town, member: str, rule: str, days_ago: int = 0, **fields) -> dict:
    response = town.post("/awards", "organiser", {"member": member, "rule": rule,
                                                  "occurred_at": when(days_ago), **fields})
    assert response.status_code in (201, 202), response.json
    return response.json


@pytest.fixture
def village(town):
    """Today: 张三丰 meeting 5 + volunteer 5; 欧阳娜娜 meeting 5; 李四 meeting 5, reversed."""
    engine = engine_of(town)
    for code, (name, household) in RESIDENTS.items():
        create_member(engine, town.code, code, name, household)
    award(town, "zhang-sanfeng", "meeting", memo="村民代表大会")
    award(town, "zhang-sanfeng", "volunteer", quantity=60, memo="清扫河道")
    award(town, "ouyang-nana", "meeting")
    mistaken = award(town, "li-si", "meeting")
    reversal = town.post(f"/entries/{mistaken['entry']['seq']}/reversal", "reviewer",
                         {"memo": "李四没有到会"})
    assert reversal.status_code == 201, reversal.json
    town.mistaken = mistaken["entry"]["seq"]
    town.reversal = reversal.json["seq"]
    return town


def test_standings_are_served_to_anyone_with_masked_names(village):
    response = public(village, "/boards/standings")
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "public, max-age=60"
    board = response.json
    assert board["period"] == {"kind": "lifetime", "label": "all time", "start": None,
                               "end": None}
    assert board["unit"] is None and board["next_offset"] is None
    top = [(row["rank"], row["name"], row["household"], row["unit"], row["score_points"])
           for row in board["items"][:2]]
    assert top == [(1, "张*丰", "东*户", "东村", 10), (2, "欧**娜", "东*户", "东村", 5)]
    assert board["items"][0]["members"] is None
    assert {row["score_points"] for row in board["items"][2:]} == {0}


def test_household_standings_sum_their_members(village):
    response = public(village, "/boards/standings?by=household&unit=town")
    assert response.status_code == 200, response.json
    assert [(row["rank"], row["household"], row["members"], row["score_points"], row["name"])
            for row in response.json["items"]] == [(1, "东*户", 5, 15, None),
                                                   (2, "西*户", 2, 0, None)]
    assert response.json["unit"] == {"code": "town", "name": "测试镇"}


def test_disclosure_shows_the_reversal_and_what_it_reversed(village):
    response = public(village, "/boards/disclosure?limit=2")
    assert response.status_code == 200, response.json
    first = response.json["items"]
    assert [(line["seq"], line["kind"], line["name"], line["points"], line["reversed"])
            for line in first] == [(village.reversal, "reversal", "李*", -5, False),
                                   (village.mistaken, "award", "李*", 5, True)]
    assert (first[0]["reverses"], first[0]["memo"], first[0]["rule_name"]) == (
        village.mistaken, "李*没有到会", "参加会议")
    assert first[1]["reversed_by"] == village.reversal
    assert first[1]["occurred_on"] == datetime.now(SHANGHAI).date().isoformat()
    rest = public(village, f"/boards/disclosure?limit=2&cursor={response.json['next_cursor']}")
    assert [(line["name"], line["rule"], line["memo"]) for line in rest.json["items"]] == [
        ("欧**娜", "meeting", ""), ("张*丰", "volunteer", "清扫河道")]
    last = public(village, f"/boards/disclosure?limit=2&cursor={rest.json['next_cursor']}")
    assert [line["memo"] for line in last.json["items"]] == ["村民代表大会"]
    assert last.json["next_cursor"] is None


def test_claims_in_their_notice_window_are_on_the_disclosure_board(village):
    with write_transaction(engine_of(village)) as connection:
        connection.execute(update(Programme).where(Programme.code == village.code)
                           .values(notice_days=5))
    claim = award(village, "ouyang-nana", "honour", memo="家风优良")["claim"]
    assert public(village, "/boards/disclosure").json["in_notice"] == []
    approved = village.post(f"/claims/{claim}/approve", "reviewer")
    assert approved.status_code == 200, approved.json
    in_notice = public(village, "/boards/disclosure").json["in_notice"]
    assert [(item["claim"], item["name"], item["rule_name"], item["category"], item["points"],
             item["memo"]) for item in in_notice] == [
        (claim, "欧**娜", "优秀家庭", "优秀我来当", 50, "家风优良")]
    assert public(village, "/boards/disclosure?unit=west").json["in_notice"] == []


def test_the_honour_roll_names_the_best_per_category(village):
    award(village, "li-si", "volunteer", quantity=120)
    response = public(village, "/boards/honour?top=1")
    assert response.status_code == 200, response.json
    roll = response.json
    assert roll["period"]["kind"] == "month" and roll["top"] == 1
    assert {category["category"]: [(row["rank"], row["name"], row["score_points"])
                                   for row in category["items"]]
            for category in roll["categories"]} == {
        "会议我能到": [(1, "张*丰", 5), (1, "欧**娜", 5)],
        "活动我参加": [(1, "李*", 10)],
        "优秀我来当": [],
    }
    assert [(row["rank"], row["household"], row["score_points"]) for row in roll["households"]
            ] == [(1, "东*户", 15)]


def test_no_board_names_a_member_code_a_full_name_or_an_account(village):
    for path in BOARDS:
        response = public(village, path)
        assert response.status_code == 200, (path, response.json)
        text = json.dumps(response.json, ensure_ascii=False)
        for secret in (*MEMBER_CODES, "member:", "张三丰", "欧阳娜娜", "李四", "东一户",
                       "居民"):
            assert secret not in text, (path, secret)


def test_a_range_counts_local_dates_with_the_end_excluded(village):
    award(village, "li-si", "volunteer", days_ago=3, quantity=60)
    three_days_ago = (datetime.now(SHANGHAI) - timedelta(days=3)).date()
    day_after = three_days_ago + timedelta(days=1)
    response = public(village, f"/boards/standings?from={three_days_ago}&to={day_after}")
    assert response.status_code == 200, response.json
    assert response.json["period"] == {"kind": "range", "label": three_days_ago.isoformat(),
                                       "start": three_days_ago.isoformat(),
                                       "end": day_after.isoformat()}
    assert [(row["name"], row["score_points"]) for row in response.json["items"]
            if row["score_points"]] == [("李*", 5)]
    day = public(village, f"/boards/disclosure?period=day&at={three_days_ago}")
    assert [line["name"] for line in day.json["items"]] == ["李*"]


@pytest.mark.parametrize(("path", "status", "code", "field"), [
    ("/boards/standings?unit=north", 404, "unknown_unit", None),
    ("/boards/honour?unit=north", 404, "unknown_unit", None),
    ("/boards/disclosure?unit=north", 404, "unknown_unit", None),
    ("/boards/standings?period=fortnight", 422, "validation_error", "period"),
    ("/boards/standings?at=2026-13-01", 422, "validation_error", "at"),
    ("/boards/honour?from=2026-11-31&to=2026-12-01", 422, "validation_error", "from"),
    ("/boards/standings?at=0001-01-01", 422, "validation_error", "at"),
    ("/boards/standings?from=2026-11-01", 422, "invalid_period", "to"),
    ("/boards/standings?to=2026-11-01", 422, "invalid_period", "from"),
    ("/boards/standings?from=2026-11-02&to=2026-11-01", 422, "invalid_period", "to"),
    ("/boards/disclosure?period=month&from=2026-11-01&to=2026-11-05", 422, "invalid_period",
     "from"),
    ("/boards/honour?period=range&from=2026-11-01&to=2026-11-05&at=2026-11-02", 422,
     "invalid_period", "at"),
    ("/boards/standings?by=unit", 422, "validation_error", "by"),
    ("/boards/standings?limit=0", 422, "validation_error", "limit"),
    ("/boards/standings?offset=-1", 422, "validation_error", "offset"),
    ("/boards/disclosure?limit=201", 422, "validation_error", "limit"),
    ("/boards/honour?top=51", 422, "validation_error", "top"),
    ("/boards/honour?unit=Town", 422, "validation_error", "unit"),
    ("/boards/standings?perod=month", 422, "validation_error", "perod"),
    ("/boards/disclosure?cursor=bm90LWEtY3Vyc29y", 400, "invalid_cursor", None),
])
def test_bad_parameters_are_problems_with_stable_codes(town, path, status, code, field):
    response = public(town, path)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    if code == "validation_error":
        assert field in [error["field"] for error in response.json["errors"]]
    else:
        assert response.json.get("field") == field


def test_an_unknown_programme_has_no_boards(client):
    response = client.get("/programmes/no-such-programme/boards/standings")
    assert response.status_code == 404
    assert response.json["code"] == "unknown_programme"


def test_the_document_says_the_boards_need_no_key(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    boards = {path: item["get"] for path, item in paths.items() if "/boards/" in path}
    assert set(boards) == {f"/programmes/{{programme}}/boards/{name}"
                           for name in ("standings", "disclosure", "honour")}
    assert all(operation["security"] == [] for operation in boards.values())
