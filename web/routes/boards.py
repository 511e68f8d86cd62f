"""The three boards (三张榜单) as pages anyone may open: 积分榜, 公示榜, 光荣榜, and a chart.

Public, as the API's boards are (api/routes/boards.py): no sign-in, and
nobody named in full. Names come masked from `audit.boards` (张三丰 →
张*丰) and no member code is on any page. A unit and a period are chosen
from two selects (a month of the last year, a year, or all time); the
address keeps the choice, so a board can be bookmarked, shared or left on a
screen. `?display=tv` shows the same board full screen, in large type,
without the controls, reloading itself every minute: for the TV in the
village hall. Printing any board gives the same plain layout (the print
style sheet in pages.css).

The chart (统计图) is points awarded per month and per category, drawn as
SVG on the server (web/charts.py) from `audit.boards.awards_by_month`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_babel import gettext
from markupsafe import Markup

from api.problems import ApiProblem
from api.routes.boards import decode_cursor, encode_cursor
from audit import boards
from audit.boards import PeriodQuery
from ledger.organisation import list_units
from ledger.programmes import ProgrammeInfo, get_programme, list_programmes
from web.charts import Bar, colour, stacked_bar_chart
from web.formats import local_time
from web.sessions import engine

blueprint = Blueprint("boards", __name__, url_prefix="/boards")

ALL_TIME = "all"
MONTHS_OFFERED = 12
YEARS_OFFERED = 3
MAX_UNITS_OFFERED = 500
STANDINGS_ROWS = 100
DISCLOSURE_LINES = 50
HONOUR_TOP = 10
CHART_MONTHS = 12
TV_REFRESH_SECONDS = 60
BOARDS = ("standings", "disclosure", "honour", "chart")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Choice:
    """What the selects chose, as the address says it."""

    unit: str | None
    when: str
    """`all`, a year (`2026`) or a month (`2026-11`)."""
    tv: bool

    def arguments(self, **more: Any) -> dict[str, Any]:
        """The address's query for this choice (and `more`), for links between boards."""
        found = {"unit": self.unit, "when": self.when, "display": "tv" if self.tv else None}
        return {key: value for key, value in (found | more).items() if value is not None}


@blueprint.get("")
def programmes():
    found = list_programmes(engine())
    if len(found) == 1:
        return redirect(url_for(".standings", programme=found[0].code))
    return render_template("boards/programmes.html", programmes=found)


@blueprint.get("/<programme>")
def first_board(programme: str):
    get_programme(engine(), programme)
    return redirect(url_for(".standings", programme=programme, **request.args))


@blueprint.get("/<programme>/standings")
def standings(programme: str):
    """积分榜: members (or households) by score in the period."""
    info, choice = _chosen(programme)
    by = "household" if request.args.get("by") == "household" else "member"
    board = boards.standings(engine(), programme, unit=choice.unit, period=_period(choice),
                             by=by, limit=STANDINGS_ROWS)
    return _render("boards/standings.html", "standings", info, choice, board=board, by=by)


@blueprint.get("/<programme>/disclosure")
def disclosure(programme: str):
    """公示榜: every award, deduction and correction, newest first; and claims in notice."""
    info, choice = _chosen(programme)
    cursor = request.args.get("before")
    try:
        before = decode_cursor(cursor) if cursor else None
    except ApiProblem:
        abort(404)
    board = boards.disclosure(engine(), programme, unit=choice.unit,
                              period=_period(choice), limit=DISCLOSURE_LINES,
                              before=before)
    older = None if board.next_before is None else encode_cursor(*board.next_before)
    return _render("boards/disclosure.html", "disclosure", info, choice, board=board,
                   older=older, notice_until={
                       claim.claim: _local_day(claim.notice_until, info)
                       for claim in board.in_notice})


@blueprint.get("/<programme>/honour")
def honour(programme: str):
    """光荣榜: the best members per category, and the best households."""
    info, choice = _chosen(programme)
    board = boards.honour_roll(engine(), programme, unit=choice.unit,
                               period=_period(choice), top=HONOUR_TOP)
    return _render("boards/honour.html", "honour", info, choice, board=board)


@blueprint.get("/<programme>/chart")
def chart(programme: str):
    """Points awarded per month (the 12 months up to the chosen one) and per category."""
    info, choice = _chosen(programme)
    awards = boards.awards_by_month(engine(), programme, unit=choice.unit,
                                    last_month=_last_month(choice, info), months=CHART_MONTHS)
    series = [category or gettext("Other") for category in awards.categories]
    bars = [Bar(_month_short(month.start), tuple(month.by_category.get(category, 0)
                                                 for category in awards.categories))
            for month in awards.months]
    svg = stacked_bar_chart(bars, series, title=gettext("Points awarded per month"))
    legend = [(name, colour(index), sum(bar.segments[index] for bar in bars))
              for index, name in enumerate(series)]
    return _render("boards/chart.html", "chart", info, choice, svg=Markup(svg), legend=legend,
                   months=[(_month_label(month.start), month.total_points)
                           for month in awards.months],
                   total=sum(bar.total for bar in bars))


# -- the choice of unit and period --------------------------------------------------------


def _chosen(programme: str) -> tuple[ProgrammeInfo, Choice]:
    """The programme, and the unit and period chosen; an unknown one of either is the default
    (a select cannot send it, and a stale bookmark should still show a board)."""
    info = get_programme(engine(), programme)
    g.board_units, g.board_periods = _units(info), _periods(info)
    unit = request.args.get("unit") or None
    if unit is not None and unit not in dict(g.board_units):
        unit = None
    when = request.args.get("when", "")
    if when not in dict(g.board_periods):
        when = _this_month(info).strftime("%Y-%m")
    return info, Choice(unit, when, request.args.get("display") == "tv")


def _period(choice: Choice) -> PeriodQuery:
    if choice.when == ALL_TIME:
        return PeriodQuery("lifetime")
    if _YEAR.match(choice.when):
        return PeriodQuery("year", date(int(choice.when), 1, 1))
    year, month = _MONTH.match(choice.when).groups()
    return PeriodQuery("month", date(int(year), int(month), 1))


def _last_month(choice: Choice, info: ProgrammeInfo) -> date:
    """The chart's last month: the chosen month, December of the chosen year (or this
    month, for this year), or this month for all time."""
    this_month = _this_month(info)
    if _YEAR.match(choice.when):
        return min(date(int(choice.when), 12, 1), this_month)
    if choice.when == ALL_TIME:
        return this_month
    return _period(choice).at


def _periods(info: ProgrammeInfo) -> list[tuple[str, str]]:
    """(value, label) of each period offered: the last months, the last years, all time."""
    this_month = _this_month(info)
    months = [boards.first_of_month(this_month, back) for back in range(MONTHS_OFFERED)]
    years = [this_month.year - back for back in range(YEARS_OFFERED)]
    return ([(month.strftime("%Y-%m"), _month_label(month)) for month in months]
            + [(str(year), gettext("%(year)s", year=year)) for year in years]
            + [(ALL_TIME, gettext("All time"))])


def _units(info: ProgrammeInfo) -> list[tuple[str, str]]:
    """(code, name) of the units offered, in the tree's order, indented by depth."""
    found = sorted(list_units(engine(), info.code, limit=MAX_UNITS_OFFERED),
                   key=lambda unit: unit.path)
    return [(unit.code, "\u3000" * (unit.path.count("/") - 2) + unit.name) for unit in found]


def _this_month(info: ProgrammeInfo) -> date:
    return datetime.now(UTC).astimezone(info.zone).date().replace(day=1)


def _month_label(month: date) -> str:
    return gettext("%(year)s-%(month)s", year=month.year, month=str(month.month).zfill(2))


def _month_short(month: date) -> str:
    names = (gettext("Jan"), gettext("Feb"), gettext("Mar"), gettext("Apr"), gettext("May"),
             gettext("Jun"), gettext("Jul"), gettext("Aug"), gettext("Sep"), gettext("Oct"),
             gettext("Nov"), gettext("Dec"))
    return names[month.month - 1]


def _local_day(timestamp: str, info: ProgrammeInfo) -> str:
    return local_time(timestamp, info.zone)[:10]


def _render(template: str, board_name: str, info: ProgrammeInfo, choice: Choice,
            **context: Any) -> str:
    units, periods = g.board_units, g.board_periods
    unit_name = dict(units).get(choice.unit, "").strip("\u3000") if choice.unit else None
    return render_template(template, board_name=board_name, programme=info, choice=choice,
                           units=units, periods=periods, unit_name=unit_name,
                           period_label=dict(periods)[choice.when],
                           tv_refresh_seconds=TV_REFRESH_SECONDS, boards=BOARDS, **context)

