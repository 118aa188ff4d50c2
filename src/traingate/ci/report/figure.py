"""Chart geometry: round ticks, the pixel layout of a chart, and curve decimation.

A :class:`Figure` is a list of drawing primitives in pixels that both renderers (SVG and
PNG) draw, so the two pictures of a chart agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from traingate.ci.report.model import AXIS_COLOR, GRID_COLOR, LIMIT_COLOR, Chart

WIDTH, HEIGHT = 880, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k)."""
    span = hi - lo
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(step, 1.0)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass
class Figure:
    """A chart laid out in pixels: primitives both renderers draw (text is SVG only)."""

    width: int
    height: int
    items: list[tuple[Any, ...]] = field(default_factory=list)

    def line(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        color: str,
        width: float = 1,
        dash: str = "",
    ) -> None:
        """A straight line; ``dash`` is an SVG dash pattern ("8 5"), empty for solid."""
        self.items.append(("line", x0, y0, x1, y1, color, width, dash))

    def polyline(self, points: list[tuple[float, float]], color: str, width: float = 2) -> None:
        """A curve through ``points`` (nothing for none)."""
        if points:
            self.items.append(("polyline", points, color, width))

    def marker(self, x: float, y: float, color: str, shape: str, title: str) -> None:
        """A violation marker: ``"x"`` at a value, ``"triangle"`` for a non-finite one."""
        self.items.append(("marker", x, y, color, shape, title))

    def text(self, x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> None:
        """A label (SVG only: the PNG leaves text to the HTML)."""
        self.items.append(("text", x, y, text, anchor, size))


def layout(chart: Chart) -> Figure:
    """Scale the chart's data to pixels and lay out axes, grid, curves, limits and marks."""
    xs = [p[0] for s in chart.series for p in s.points] + [m.x for m in chart.marks]
    xs += [
        x for lim in chart.limits for x0, x1, _ in lim.segments for x in (x0, x1) if x is not None
    ]
    ys = [p[1] for s in chart.series for p in s.points if math.isfinite(p[1])]
    ys += [y for lim in chart.limits for *_, y in lim.segments]
    ys += [m.y for m in chart.marks if m.y is not None]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    pad = (y_hi - y_lo) * 0.06 or (abs(y_hi) * 0.1 or 1.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return TOP + (y_hi - y) / (y_hi - y_lo) * plot_h

    fig = Figure(WIDTH, HEIGHT)
    for t in nice_ticks(y_lo, y_hi):
        fig.line(LEFT, py(t), WIDTH - RIGHT, py(t), GRID_COLOR)
        fig.text(LEFT - 6, py(t) + 4, f"{t:.4g}", "end")
    for t in nice_ticks(max(x_lo, 0.0) if min(xs, default=0.0) >= 0 else x_lo, x_hi, 8, True):
        fig.line(px(t), TOP, px(t), HEIGHT - BOTTOM, GRID_COLOR)
        fig.text(px(t), HEIGHT - BOTTOM + 15, f"{t:.6g}")
    fig.text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 4, chart.x_label)
    for s in chart.series:
        for run in _finite_runs(s.points):
            fig.polyline(_decimate([(px(x), py(y)) for x, y in run], plot_w), s.color)
    half = _half_width(xs)
    for lim in chart.limits:
        for x0, x1, y in lim.segments:
            left = LEFT if x0 is None else px(x0)
            right = WIDTH - RIGHT if x1 is None else px(x1)
            if right - left < 4:  # a limit at one evaluation: a little either side of it
                reach = px(x_lo + half) - px(x_lo)
                left, right = left - reach, right + reach
            fig.line(
                max(LEFT, left), py(y), min(WIDTH - RIGHT, right), py(y), LIMIT_COLOR, 2, "8 5"
            )
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
