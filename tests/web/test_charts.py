"""The hand-written SVG bar chart (web/charts.py): valid XML, bars to scale, text escaped.
No database."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from web.charts import PLOT_HEIGHT, Bar, axis_top, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def bars_of(svg: str) -> list[tuple[float, float, int, str]]:
    """(y, height, points, fill) of every bar, in drawing order."""
    root = ElementTree.fromstring(svg)
    return [(float(rect.get("y")), float(rect.get("height")), int(rect.get("data-points")),
             rect.get("fill"))
            for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_the_chart_is_valid_svg_with_a_bar_per_month_to_scale():
    bars = [Bar("10月", (20, 5)), Bar("11月", (0, 40)), Bar("12月", (0, 0))]

    svg = stacked_bar_chart(bars, ["会议我能到", "活动我参加"], title="每月发放积分")

    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("viewBox") == "0 0 360 220" and root.get("style") is None
    assert [text.text for text in root.iter(f"{SVG}text")][-3:] == ["10月", "11月", "12月"]
    drawn = bars_of(svg)
    assert [points for _, _, points, _ in drawn] == [20, 5, 40]
    heights_per_point = {round(height / points, 6) for _, height, points, _ in drawn}
    assert len(heights_per_point) == 1  # every bar to the same scale
    assert heights_per_point.pop() == pytest.approx(PLOT_HEIGHT / axis_top(45), rel=1e-3)
    october_first, october_second = drawn[0], drawn[1]
    assert october_second[0] + october_second[1] == pytest.approx(october_first[0], abs=0.02)
    assert october_first[3] != october_second[3] and drawn[2][3] == october_second[3]


@pytest.mark.parametrize(("largest", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10),
                                              (45, 50), (100, 100), (101, 200), (4999, 5000)])
def test_the_axis_ends_at_a_round_number(largest, top):
    assert axis_top(largest) == top


def test_labels_are_escaped_and_bad_bars_refused():
    svg = stacked_bar_chart([Bar("<b>&", (1,))], ["A & <B>"], title='"quoted" <title>')
    root = ElementTree.fromstring(svg)
    assert root.get("aria-label") == '"quoted" <title>'
    assert [text.text for text in root.iter(f"{SVG}text")][-1] == "<b>&"
    with pytest.raises(ValueError):
        stacked_bar_chart([Bar("x", (1, 2))], ["only one"], title="t")
    with pytest.raises(ValueError):
        stacked_bar_chart([Bar("x", (-1,))], ["a"], title="t")


def test_an_empty_chart_is_still_a_chart():
    root = ElementTree.fromstring(stacked_bar_chart([], [], title="t"))
    assert bars_of(ElementTree.tostring(root, encoding="unicode")) == []
