"""What a chart holds before it is laid out: curves, limit lines, marks, and their colours."""

from __future__ import annotations

from dataclasses import dataclass, field

PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
LIMIT_COLOR = "#d62728"
VIOLATION_COLOR = "#d62728"
WARNING_COLOR = "#ff7f0e"
GRID_COLOR = "#e4e4e4"
AXIS_COLOR = "#555555"


@dataclass
class Series:
    """One curve: ``(x, y)`` points in x order (NaN/inf break the line)."""

    label: str
    points: list[tuple[float, float]]
    color: str


@dataclass
class LimitLine:
    """Where one limit applied, drawn in the limit colour.

    ``segments`` are dashed ``(x0, x1, y)``: a ``None`` end runs to that edge of the chart,
    and a segment at one x (x0 == x1) is drawn a little either side of it. ``path`` is a
    moving limit, one thin line through ``(x, limit)`` at each evaluation. ``bands`` are
    two-sided bounds ``(x0, x1, low, high)``, filled between their dashed edges.

    ``name`` is what the limit is (the kind's ``limit_label``), ``label`` the legend text.
    """

    name: str
    label: str
    segments: list[tuple[float | None, float | None, float]] = field(default_factory=list)
    path: list[tuple[float, float]] = field(default_factory=list)
    bands: list[tuple[float, float, float, float]] = field(default_factory=list)
    invariant: str = ""

    def ys(self) -> list[float]:
        """Every limit value it draws (for the chart's y range)."""
        return (
            [y for *_, y in self.segments]
            + [y for _, y in self.path]
            + [v for *_, lo, hi in self.bands for v in (lo, hi)]
        )

    def xs(self) -> list[float]:
        """Every x it names (for the chart's x range; ``None`` ends excluded)."""
        ends = [x for x0, x1, _ in self.segments for x in (x0, x1) if x is not None]
        return ends + [x for x, _ in self.path] + [x for x0, x1, *_ in self.bands for x in (x0, x1)]


@dataclass
class Mark:
    """A violation (or advisory warning) at ``x``; ``y`` None when it is not finite."""

    x: float
    y: float | None
    label: str
    color: str


@dataclass
class Chart:
    """A chart's data: its curves, the limits drawn on it, and the violations marked."""

    key: str
    title: str
    x_label: str
    series: list[Series] = field(default_factory=list)
    limits: list[LimitLine] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
