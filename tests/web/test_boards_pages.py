"""The public boards as pages (web/routes/boards.py): no sign-in, names masked, no member codes
anywhere in the HTML, a unit and a period from the selects, the TV mode, and the chart.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from audit.boards import awards_by_month, first_of_month
from ledger.awards import AwardRequest, award, reverse_award
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme
from ledger.rules import set_rule
from tests.audit.test_boards import RULES

from .conftest import text_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
ORGANISER = "organiser-board-pages"
REVIEWER = "reviewer-board-pages"
PEOPLE = {
    # member code: (name, masked, household code, unit)
    "resident-zhang-sanfeng": ("张三丰", "张*丰", "household-zhang", "east"),
    "resident-ouyang-nana": ("欧阳娜娜", "欧**娜", "household-ouyang", "east"),
    "resident-li-si": ("李四", "李*", "household-li", "west"),
}
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Village:
    engine: object
    code: str

    def award(self, member: str, rule: str, months_ago: int = 0, memo: str = ""):
        today = datetime.now(UTC).astimezone(SHANGHAI).date()
        day = first_of_month(today, months_ago).replace(day=2)
        when = datetime(day.year, day.month, day.day, 10, tzinfo=SHANGHAI)
        return award(self.engine, self.code, AwardRequest(member=member, rule=rule,
                                                          occurred_at=when, memo=memo),
                     actor=ORGANISER).entry

    def month(self, months_ago: int = 0) -> str:
        today = datetime.now(UTC).astimezone(SHANGHAI).date()
        return first_of_month(today, months_ago).strftime("%Y-%m")


@pytest.fixture
def village(engine) -> Village:
    code = f"boards-{uuid.uuid4().hex[:10]}"
    create_programme(engine, code, "幸福村积分", "Asia/Shanghai")
    create_unit(engine, code, "town", "测试镇", "town")
    create_unit(engine, code, "east", "东村", "village", "town")
    create_unit(engine, code, "west", "西村", "village", "town")
    for household, name, unit in (("household-zhang", "张家", "east"),
                                  ("household-ouyang", "欧阳家", "east"),
                                  ("household-li", "李家", "west")):
        create_household(engine, code, household, name, unit)
    for member, (name, _masked, household, _unit) in PEOPLE.items():
        create_member(engine, code, member, name, household)
    grant_role(engine, code, ORGANISER, "organiser", "town")
    grant_role(engine, code, REVIEWER, "reviewer", "town")
    for rule in RULES:
        set_rule(engine, code, rule, "system:test")
    found = Village(engine, code)
    found.award("resident-zhang-sanfeng", "meeting", memo="张三丰准时参会")
    found.award("resident-zhang-sanfeng", "volunteer")
    found.award("resident-ouyang-nana", "excel", months_ago=1)
    found.award("resident-li-si", "litter")
    return found


def assert_nobody_named_in_full(html: str) -> None:
    for member, (name, _masked, household, _unit) in PEOPLE.items():
        assert member not in html and household not in html
        assert name not in html


def test_the_points_board_is_public_and_masks_every_name(village, visitor):
    page = visitor.get(f"/boards/{village.code}/standings?when=all")

    assert page.status_code == 200 and "积分榜" in text_of(page)
    html = page.get_data(as_text=True)
    assert_nobody_named_in_full(html)
    rows = re.findall(r'<td class="name">(.*?)<small>', html)
    assert rows == ["欧**娜", "张*丰", "李*"]
    assert "张*丰" in html and 'name="csrf_token"' not in html


def test_households_rank_and_the_unit_select_narrows_the_board(village, visitor):
    households = visitor.get(f"/boards/{village.code}/standings?when=all&by=household")
    assert re.findall(r'<td class="name">(.*?)<small>', households.get_data(as_text=True)) == [
        "欧*家", "张*", "李*"]

    east = visitor.get(f"/boards/{village.code}/standings?when=all&unit=east")

    html = east.get_data(as_text=True)
    assert "李*" not in re.search(r'<table.*</table>', html, flags=re.S).group(0)
    assert '<option value="east" selected>' in html
    assert "东村 · 全部" in text_of(east)
    stale = visitor.get(f"/boards/{village.code}/standings?unit=gone&when=1999-01")
    assert stale.status_code == 200 and "全部单位" in text_of(stale)


def test_the_period_select_offers_months_years_and_all_time(village, visitor):
    this_month = visitor.get(f"/boards/{village.code}/standings")
    html = this_month.get_data(as_text=True)
    assert f'<option value="{village.month()}" selected>' in html
    assert f'<option value="{village.month(11)}">' in html and '<option value="all">' in html
    ranked = re.findall(r'<td class="name">(.*?)<small>.*?<td class="number">(-?\d+)</td>', html,
                        flags=re.S)
    assert ranked[0] == ("张*丰", "8") and ("欧**娜", "0") in ranked

    last_month = visitor.get(f"/boards/{village.code}/standings?when={village.month(1)}")
    ranked = re.findall(r'<td class="name">(.*?)<small>', last_month.get_data(as_text=True))
    assert ranked[0] == "欧**娜"


def test_the_public_notice_board_shows_every_entry_masked(village, visitor):
    mistaken = village.award("resident-li-si", "meeting")
    reversal = reverse_award(village.engine, village.code, mistaken.seq, actor=REVIEWER,
                             memo="李四当天未到场").entry

    page = visitor.get(f"/boards/{village.code}/disclosure?when=all")

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "公示榜" in text_of(page)
    assert_nobody_named_in_full(html)
    assert "张*丰准时参会" in html and "李*当天未到场" in html
    assert f"被第 {reversal.seq} 条更正" in text_of(page)
    seqs = [int(seq) for seq in re.findall(r'<li id="line-(\d+)"', html)]
    assert seqs == sorted(seqs, reverse=True) and reversal.seq == seqs[0]


def test_the_honour_roll_names_the_best_per_category_masked(village, visitor):
    page = visitor.get(f"/boards/{village.code}/honour?when=all")

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "光荣榜" in text_of(page)
    assert_nobody_named_in_full(html)
    for category in ("会议我能到", "活动我参加", "优秀我来当"):
        assert f"<h2>{category}</h2>" in html
    assert "欧**娜" in html


def test_the_chart_draws_each_months_awards_to_scale(village, visitor):
    page = visitor.get(f"/boards/{village.code}/chart?when={village.month()}")

    assert page.status_code == 200 and "统计图" in text_of(page)
    html = page.get_data(as_text=True)
    assert_nobody_named_in_full(html)
    svg = ElementTree.fromstring(re.search(r"<svg [^>]*class=\"chart\".*?</svg>", html,
                                           flags=re.S).group(0))
    bars = [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "bar"]
    points = [int(rect.get("data-points")) for rect in bars]
    assert sorted(points) == [3, 5, 10]  # the deduction is not an award
    ratios = {round(float(rect.get("height")) / int(rect.get("data-points")), 3) for rect in bars}
    assert len(ratios) == 1
    labels = [text.text for text in svg.iter(f"{SVG}text")][-12:]
    assert len(labels) == 12 and labels[-1].endswith("月")
    legend = text_of(page)
    assert "会议我能到 5" in legend and "优秀我来当 10" in legend
    found = awards_by_month(village.engine, village.code)
    assert sum(month.total_points for month in found.months) == 18


def test_the_tv_mode_is_the_board_full_screen_and_reloading(village, visitor):
    page = visitor.get(f"/boards/{village.code}/standings?when=all&display=tv")

    html = page.get_data(as_text=True)
    assert '<body class="board tv">' in html
    assert '<meta http-equiv="refresh" content="60">' in html
    assert '<input type="hidden" name="display" value="tv">' in html
    assert "display=tv" in re.search(r'<nav class="tabs.*?</nav>', html, flags=re.S).group(0)
    assert "退出全屏" in text_of(page)


def test_boards_in_english_and_unknown_programmes(village, visitor):
    english = visitor.get(f"/boards/{village.code}/honour?when=all&lang=en")
    assert "Honour roll" in text_of(english) and "Best households" in text_of(english)
    assert visitor.get("/boards/no-such-programme/standings").status_code == 404
    listed = visitor.get("/boards")
    assert listed.status_code in (200, 302)
    if listed.status_code == 200:
        assert f"/boards/{village.code}/standings" in listed.get_data(as_text=True)
    assert visitor.get(f"/boards/{village.code}").location.endswith(
        f"/boards/{village.code}/standings")
