"""Chart geometry: the pixel layout of a chart, and curve decimation.

A :class:`Figure` is a list of drawing primitives in pixels that the SVG renderer draws
(and the built-in PNG fallback rasterises, text aside); the matplotlib PNG draws the same
:class:`Chart` on the same :class:`~traingate.ci.report.ticks.Scale`, so the pictures of a
chart agree. Each primitive carries SVG attributes (``class``, ``data-*``) that name what
it is: a limit's invariant and where it applied, a violation's message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from traingate.ci.report.model import AXIS_COLOR, GRID_COLOR, LIMIT_COLOR, Chart
from traingate.ci.report.ticks import Scale, make_scale, nice_ticks

__all__ = ["Figure", "chart_scale", "layout", "nice_ticks"]

WIDTH, HEIGHT = 880, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34
POINT_REACH = 8.0  # pixels either side of a limit drawn at one evaluation, at least
Attrs = dict[str, str]


@dataclass
class Figure:
    """A chart laid out in pixels: primitives the renderers draw, and the svg's attributes."""

    width: int
    height: int
    items: list[tuple[Any, ...]] = field(default_factory=list)
    attrs: Attrs = field(default_factory=dict)

    def line(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        color: str,
        width: float = 1,
        dash: str = "",
        attrs: Attrs | None = None,
    ) -> None:
        """A straight line; ``dash`` is an SVG dash pattern ("8 5"), empty for solid."""
        self.items.append(("line", x0, y0, x1, y1, color, width, dash, attrs or {}))

    def polyline(
        self,
        points: list[tuple[float, float]],
        color: str,
        width: float = 2,
        dash: str = "",
        attrs: Attrs | None = None,
        dots: bool = True,
    ) -> None:
        """A curve through ``points`` (nothing for none); ``dots`` marks a short curve's
        points."""
        if points:
            self.items.append(("polyline", points, color, width, dash, attrs or {}, dots))

    def band(
        self, x0: float, y0: float, x1: float, y1: float, color: str, attrs: Attrs | None = None
    ) -> None:
        """A translucent filled rectangle between two corners."""
        self.items.append(("band", x0, y0, x1, y1, color, attrs or {}))

    def marker(self, x: float, y: float, color: str, shape: str, title: str) -> None:
        """A violation marker: ``"x"`` at a value, ``"triangle"`` for a non-finite one."""
        self.items.append(("marker", x, y, color, shape, title))

    def text(self, x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> None:
        """A label (SVG only: the fallback PNG has no font)."""
        self.items.append(("text", x, y, text, anchor, size))


def chart_scale(chart: Chart) -> Scale:
    """The chart's ranges and ticks, from its curves, limits and marks."""
    xs = [p[0] for s in chart.series for p in s.points] + [m.x for m in chart.marks]
    xs += [x for lim in chart.limits for x in lim.xs()]
    ys = [p[1] for s in chart.series for p in s.points if math.isfinite(p[1])]
    ys += [y for lim in chart.limits for y in lim.ys()]
    ys += [m.y for m in chart.marks if m.y is not None]
    return make_scale(xs, ys)


def layout(chart: Chart) -> Figure:
    """Scale the chart's data to pixels and lay out axes, grid, curves, limits and marks."""
    scale = chart_scale(chart)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + scale.x_fraction(x) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - scale.y_fraction(y)) * plot_h

    fig = Figure(WIDTH, HEIGHT, attrs={"data-y-scale": "log" if scale.log else "linear"})
    for t, label in zip(scale.y_ticks, scale.y_labels(), strict=True):
        fig.line(LEFT, py(t), WIDTH - RIGHT, py(t), GRID_COLOR)
        fig.line(LEFT - 4, py(t), LEFT, py(t), AXIS_COLOR)
        fig.text(LEFT - 6, py(t) + 4, label, "end")
    for t, label in zip(scale.x_ticks, scale.x_labels(), strict=True):
        fig.line(px(t), TOP, px(t), HEIGHT - BOTTOM, GRID_COLOR)
        fig.line(px(t), HEIGHT - BOTTOM, px(t), HEIGHT - BOTTOM + 4, AXIS_COLOR)
        fig.text(px(t), HEIGHT - BOTTOM + 15, label)
    fig.text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 4, chart.x_label)
    if scale.log:
        fig.text(LEFT, HEIGHT - 4, "y axis: log scale", "start", 10)
    xs = [p[0] for s in chart.series for p in s.points]
    reach = max(px(scale.x_lo + _half_width(xs)) - px(scale.x_lo), POINT_REACH)

    def span(x0: float | None, x1: float | None) -> tuple[float, float]:
        left = LEFT if x0 is None else px(x0)
        right = WIDTH - RIGHT if x1 is None else px(x1)
        if right - left < 2 * POINT_REACH:  # a limit at one evaluation: a little either side
            left, right = left - reach, right + reach
        left, right = max(LEFT, left), min(WIDTH - RIGHT, right)
        if right - left < 2 * POINT_REACH:  # clipped at an edge: keep it visible inside
            if left <= LEFT:
                right = LEFT + 2 * POINT_REACH
            else:
                left = WIDTH - RIGHT - 2 * POINT_REACH
        return left, right

    for lim in chart.limits:  # bands under the curves, their edges and the lines above
        for x0, x1, lo, hi in lim.bands:
            left, right = span(x0, x1)
            where = {"data-x0": f"{x0:g}", "data-x1": f"{x1:g}"}
            sides = {"data-low": f"{lo:g}", "data-high": f"{hi:g}"}
            band = {"class": "limit band", "data-invariant": lim.invariant, **where, **sides}
            fig.band(left, py(hi), right, py(lo), LIMIT_COLOR, band)
    for s in chart.series:
        for run in _finite_runs(s.points):
            fig.polyline(_decimate([(px(x), py(y)) for x, y in run], plot_w), s.color)
    for lim in chart.limits:
        attrs = {"class": "limit", "data-invariant": lim.invariant}
        for x0, x1, y in lim.segments:
            left, right = span(x0, x1)
            fig.line(left, py(y), right, py(y), LIMIT_COLOR, 2, "8 5", attrs)
        if lim.path:
            pts = _decimate([(px(x), py(y)) for x, y in lim.path], plot_w)
            fig.polyline(pts, LIMIT_COLOR, 1.25, "6 3", {**attrs, "class": "limit moving"}, False)
        for x0, x1, lo, hi in lim.bands:
            left, right = span(x0, x1)
            where = {"data-x0": f"{x0:g}", "data-x1": f"{x1:g}"}
            for y in (lo, hi):
                fig.line(left, py(y), right, py(y), LIMIT_COLOR, 2, "4 2", {**attrs, **where})
    for m in chart.marks:
        y = TOP + 6 if m.y is None else py(m.y)
        fig.marker(px(m.x), y, m.color, "x" if m.y is not None else "triangle", m.label)
    fig.line(LEFT, TOP, LEFT, HEIGHT - BOTTOM, AXIS_COLOR)
    fig.line(LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM, AXIS_COLOR)
    return fig


def _half_width(xs: Sequence[float]) -> float:
    """Half the width of a limit drawn at one x: under half the gap between data points."""
    distinct = sorted(set(xs))
    if len(distinct) < 2:
        return 0.5
    gap = min(b - a for a, b in pairwise(distinct))
    return 0.45 * max(gap, (distinct[-1] - distinct[0]) * 0.01)


def _finite_runs(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split a curve at non-finite values (a NaN breaks the line, it is not drawn)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _decimate(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """Keep each pixel column's first, min, max and last points (spikes survive)."""
    if len(points) <= 2 * columns:
        return points
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    for p in points:
        if bucket and int(p[0]) != int(bucket[0][0]):
            out.extend(_extremes(bucket))
            bucket = []
        bucket.append(p)
    out.extend(_extremes(bucket))
    return out


def _extremes(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    lo, hi = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
    keep = [bucket[0], *sorted({lo, hi}, key=bucket.index), bucket[-1]]
    return [p for i, p in enumerate(keep) if i == 0 or p != keep[i - 1]]
