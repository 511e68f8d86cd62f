"""A stacked bar chart drawn as SVG on the server: points awarded per month, by category.

Written by hand rather than by a charting library: a dozen bars need a
few rectangles, no JavaScript and nothing from a CDN, and the SVG goes into
the page itself, so it prints, shows on a TV and reads on a phone without
a script. Each bar is as tall as its points, to scale (a bar of 0 points is
left out); the axis goes up to a round number (1, 2 or 5 times a power of
ten) at or above the tallest bar. Colours are attributes, not `style`, which
the pages' Content-Security-Policy would refuse. Every rectangle says its
points in a `<title>` and a `data-points` attribute, for screen readers and
tests; the page adds a legend and a table of the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import escape

VIEW_WIDTH = 360
VIEW_HEIGHT = 220
LEFT = 44
RIGHT = 8
TOP = 12
BOTTOM = 28
PLOT_WIDTH = VIEW_WIDTH - LEFT - RIGHT
PLOT_HEIGHT = VIEW_HEIGHT - TOP - BOTTOM
BAR_SHARE = 0.7
"""How much of its slot a bar fills; the rest is the gap between bars."""
TICKS = 4
PALETTE = ("#b3261e", "#1a73e8", "#1a7f37", "#e37400", "#8e24aa", "#00838f", "#6d4c41",
           "#5f6368")
"""Colours of the series, told apart also by readers with the commonest colour blindness by
their order in each bar and in the legend."""


@dataclass(frozen=True)
class Bar:
    label: str
    segments: tuple[int, ...]
    """Points of each series, in the order of the chart's series; none negative."""

    @property
    def total(self) -> int:
        return sum(self.segments)


def colour(series_index: int) -> str:
    return PALETTE[series_index % len(PALETTE)]


def axis_top(largest: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above `largest` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= largest:
                return step * factor
        step *= 10


def stacked_bar_chart(bars: Sequence[Bar], series: Sequence[str], *, title: str) -> str:
    """The chart as an `<svg>` element: one bar per item of `bars`, stacked in `series` order.

    Raises `ValueError` when a bar has another number of segments than
    there are series, or a negative one.
    """
    for bar in bars:
        if len(bar.segments) != len(series) or any(points < 0 for points in bar.segments):
            raise ValueError(f"bar {bar.label!r}: want {len(series)} segments of 0 or more "
                             f"points, got {bar.segments}")
    top = axis_top(max((bar.total for bar in bars), default=0))
    scale = PLOT_HEIGHT / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEW_WIDTH} '
             f'{VIEW_HEIGHT}" class="chart" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for tick in range(TICKS + 1):
        value = top * tick // TICKS
        y = _number(TOP + PLOT_HEIGHT - value * scale)
        parts.append(f'<line x1="{LEFT}" x2="{VIEW_WIDTH - RIGHT}" y1="{y}" y2="{y}" '
                     f'stroke="#d9d9d9" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y}" font-size="11" text-anchor="end" '
                     f'dominant-baseline="middle" fill="#5c5c5c">{value}</text>')
    slot = PLOT_WIDTH / max(len(bars), 1)
    width = _number(slot * BAR_SHARE)
    for position, bar in enumerate(bars):
        x = _number(LEFT + slot * position + slot * (1 - BAR_SHARE) / 2)
        bottom = TOP + PLOT_HEIGHT
        for index, points in enumerate(bar.segments):
            if points == 0:
                continue
            height = points * scale
            bottom -= height
            parts.append(
                f'<rect class="bar" x="{x}" y="{_number(bottom)}" width="{width}" '
                f'height="{_number(height)}" fill="{colour(index)}" data-points="{points}">'
                f"<title>{escape(bar.label)} {escape(series[index])}: {points}</title></rect>")
        parts.append(f'<text x="{_number(LEFT + slot * (position + 0.5))}" '
                     f'y="{VIEW_HEIGHT - BOTTOM / 2}" font-size="10" text-anchor="middle" '
                     f'dominant-baseline="middle" fill="#1b1b1b">{escape(bar.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
