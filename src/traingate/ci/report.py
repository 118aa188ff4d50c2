"""One self-contained HTML report of a run dir, plus a PNG of each chart beside it.

The HTML has inline CSS and inline SVG charts (no script, no external URL): the training
loss per step, the validation loss per epoch, and, when the run recorded them, the
gradient norm and the loss-component shares. Limits are drawn where they applied and
violations are marked on the curves; the gate and invariant tables follow.

Which limits can be drawn: a limit is plotted on the chart whose curve is the quantity
its check compares (``non_divergence`` → validation loss, ``loss_spike`` and
``initial_loss`` → training loss, ``gradient_norm`` → gradient norm, ``loss_balance`` →
component shares). A run dir records limits only for decisions it kept: each
invariant's ``worst`` and ``last`` evaluation in the verdict and every violation event;
a metric series named ``limit/<INVARIANT>`` in metrics.parquet (one value per
evaluation) is drawn instead when present. A limit that was the same at every recorded
evaluation is drawn across the chart; otherwise each recorded limit is a short dashed
segment at the evaluation it applied to. ``finite`` has no numeric limit and
``expression`` compares its own metrics, so theirs are listed, not drawn.

PNGs are rasterised here with zlib/struct (lines, markers, axes; the text stays in the
HTML), since the project does not depend on a plotting library.
"""

from __future__ import annotations

import html
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from traingate.ci.runcheck import RunCheck, check_run, describe_decision, fmt_number
from traingate.runtime.evidence import METRICS

WIDTH, HEIGHT = 880, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34
PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
LIMIT_COLOR = "#d62728"
VIOLATION_COLOR = "#d62728"
WARNING_COLOR = "#ff7f0e"
GRID_COLOR = "#e4e4e4"
AXIS_COLOR = "#555555"
# kinds whose limit is one number for the whole run (their params hold no history)
CONSTANT_LIMIT = frozenset({"loss_balance", "gradient_norm", "initial_loss"})
LIMIT_CHART = {
    "non_divergence": "val",
    "loss_spike": "train",
    "initial_loss": "train",
    "gradient_norm": "grad",
}


@dataclass
class Series:
    """One curve: ``(x, y)`` points in x order (NaN/inf break the line)."""

    label: str
    points: list[tuple[float, float]]
    color: str


@dataclass
class LimitLine:
    """Dashed limit segments ``(x0, x1, y)``; a ``None`` end runs to that edge of the chart,
    and a segment at one x (x0 == x1) is drawn a little either side of it."""

    label: str
    segments: list[tuple[float | None, float | None, float]]


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


# -- data ------------------------------------------------------------------------------------


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """metrics.parquet rows (point, step, epoch, name, value), or a note on why there are none."""
    path = run_dir / METRICS
    if not path.is_file():
        return [], f"{path} is missing: no curves to draw"
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist(), None
    except Exception as exc:  # ImportError or any pyarrow read error: report, do not crash
        return [], f"{path} is unreadable ({type(exc).__name__}: {exc}): no curves to draw"


def _x(point: str, step: Any, epoch: Any) -> float | None:
    value = epoch if point == "validation" else step
    if value is None and point == "validation":
        value = step
    return float(value) if isinstance(value, int | float) else None


def _num(value: Any) -> float | None:
    """A float from a JSON value (``"nan"``/``"inf"`` strings included); None if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _collect(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in rows:
        x = _x(row["point"], row["step"], row["epoch"])
        if x is not None:
            series.setdefault((row["point"], row["name"]), []).append((x, float(row["value"])))
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


def _shares(
    series: Mapping[tuple[str, str], list[tuple[float, float]]], point: str, prefix: str
) -> list[Series]:
    """Each component's share of the summed magnitudes at every x (as loss_balance defines)."""
    from traingate.checks.loss_balance import component_shares

    names = sorted(n for p, n in series if p == point and n.startswith(prefix))
    table: dict[float, dict[str, float]] = {}
    for name in names:
        for x, v in series[(point, name)]:
            table.setdefault(x, {})[name[len(prefix) :]] = v
    per_name: dict[str, list[tuple[float, float]]] = {}
    for x in sorted(table):
        for name, share in component_shares(table[x]).items():
            per_name.setdefault(name, []).append((x, share))
    return [
        Series(f"share of {name}", pts, PALETTE[i % len(PALETTE)])
        for i, (name, pts) in enumerate(sorted(per_name.items()))
    ]


def build_charts(
    check: RunCheck, rows: Sequence[Mapping[str, Any]]
) -> tuple[list[Chart], list[str]]:
    """The report's charts, with limits and violations routed to them, and notes on what
    could not be drawn."""
    series = _collect(rows)
    charts: dict[str, Chart] = {}

    def curve(point: str, name: str) -> list[Series]:
        return [Series(name, series.get((point, name), []), PALETTE[0])]

    specs = [
        ("train", "Training loss per step", "step", curve("step", "loss")),
        ("val", "Validation loss per epoch", "epoch", curve("validation", "val_loss")),
        ("grad", "Gradient norm per step", "step", curve("step", "grad_norm")),
        (
            "val_shares",
            "Validation loss-component shares per epoch",
            "epoch",
            _shares(series, "validation", "val_component/"),
        ),
        (
            "train_shares",
            "Training loss-component shares per step",
            "step",
            _shares(series, "step", "component/"),
        ),
    ]
    for key, title, x_label, found in specs:
        if any(s.points for s in found):
            charts[key] = Chart(key, title, x_label, found)
    notes: list[str] = []
    for inv in check.invariants:
        key = _chart_for(inv.check, inv.at)
        record = check.verdict["invariants"][inv.id]
        events = [
            e
            for e in check.events
            if e.get("event") in ("violation", "warning") and e.get("invariant") == inv.id
        ]
        target = charts.get(key) if key else None
        exact = series.get((_series_point(inv.at), f"limit/{inv.id}"))
        if target is not None:
            target.limits += _limit_lines(inv.id, inv.check, inv.at, record, events, exact)
            if (
                inv.check == "non_divergence"
                and not exact
                and inv.evaluations
                and not any("epoch-0 cap" in line.label for line in target.limits)
            ):
                notes.append(
                    f"{inv.id}: the epoch-0 cap is not drawn: this run dir did not record it "
                    "(the verdict keeps the worst and last evaluations, evidence the violations)"
                )
        elif inv.evaluations and inv.check != "finite":
            notes.append(
                f"{inv.id} ({inv.check}): limit not drawn"
                + ("; its quantity is not one of the charts" if key is None else "; no curve")
            )
        fallback = charts.get("val" if inv.at == "validation" else "train") or next(
            iter(charts.values()), None
        )
        for event in events:
            chart = target or fallback
            if chart is not None:
                chart.marks.append(_mark(inv.id, event, chart, own=chart is target))
    return list(charts.values()), notes


def _chart_for(kind: str, at: str) -> str | None:
    if kind == "loss_balance":
        return "val_shares" if at == "validation" else "train_shares"
    return LIMIT_CHART.get(kind)


def _series_point(at: str) -> str:
    return at if at in ("step", "validation") else "final"


def _limit_name(kind: str, x: float) -> str:
    """What a recorded limit is: non_divergence's epoch-0 cap differs from its ratio limit."""
    if kind == "non_divergence":
        return "epoch-0 cap" if x == 0 else "ratio limit (ratio × previous epoch)"
    return "limit"


def _limit_lines(
    inv_id: str,
    kind: str,
    at: str,
    record: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    exact: list[tuple[float, float]] | None,
) -> list[LimitLine]:
    """Where this invariant's limit applied, from the exact series or the kept decisions.

    An exact series holds each value until the next one. Otherwise kinds whose limit is
    one number for the whole run (CONSTANT_LIMIT) are drawn across the chart, and other
    recorded limits only at the evaluation they applied to.
    """
    kept = [e for e in [record.get("worst"), record.get("last"), *events] if isinstance(e, Mapping)]
    comparison = next((str(e["comparison"]) for e in kept if e.get("comparison")), "")
    axis = "epoch" if at == "validation" else "step"
    groups: dict[str, list[tuple[float, float | None, float]]] = {}
    if exact:
        held = [(x, y) for x, y in exact if math.isfinite(y)]
        ends: list[float | None] = [x for x, _ in held[1:]]
        for (x, y), until in zip(held, [*ends, None], strict=True):
            groups.setdefault(_limit_name(kind, x), []).append((x, until, y))
    else:
        found = set()
        for entry in kept:
            limit = _num(entry.get("limit"))
            x = _x(
                "validation" if at == "validation" else "step",
                entry.get("step"),
                entry.get("epoch"),
            )
            if limit is not None and x is not None and math.isfinite(limit):
                found.add((x, limit))
        for x, y in sorted(found):
            groups.setdefault(_limit_name(kind, x), []).append((x, x, y))
    lines = []
    for name, segments in groups.items():
        where = ", ".join(f"{axis} {fmt_number(x)}" for x in sorted({s[0] for s in segments}))
        shown = " / ".join(fmt_number(y) for y in sorted({s[2] for s in segments}))
        if exact:
            label = f"{inv_id} {name} {comparison} {shown} (as applied from {where})"
            lines.append(LimitLine(label, segments))
        elif kind in CONSTANT_LIMIT:
            label = f"{inv_id} {name} {comparison} {shown} (recorded at {where})"
            lines.append(LimitLine(label, [(None, None, y) for y in {s[2] for s in segments}]))
        else:
            label = f"{inv_id} {name} {comparison} {shown} (recorded at {where})"
            lines.append(LimitLine(label, list(segments)))
    return lines


def _mark(inv_id: str, event: Mapping[str, Any], chart: Chart, own: bool) -> Mark:
    x = _num(event.get("epoch") if chart.x_label == "epoch" else event.get("step"))
    if x is None:
        x = max((p[0] for s in chart.series for p in s.points), default=0.0)
    y = _num(event.get("observed")) if own else _curve_at(chart, x)
    if y is not None and not math.isfinite(y):
        y = None
    color = VIOLATION_COLOR if event.get("event") == "violation" else WARNING_COLOR
    label = f"{inv_id} {event.get('event')}: {event.get('detail', '')}"
    return Mark(x, y, label, color)


def _curve_at(chart: Chart, x: float) -> float | None:
    for s in chart.series:
        for px, py in s.points:
            if px == x:
                return py
    return None


# -- geometry -------------------------------------------------------------------------------


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
        self, x0: float, y0: float, x1: float, y1: float, color: str, width: float = 1, dash=""
    ) -> None:
        self.items.append(("line", x0, y0, x1, y1, color, width, dash))

    def polyline(self, points: list[tuple[float, float]], color: str, width: float = 2) -> None:
        if points:
            self.items.append(("polyline", points, color, width))

    def marker(self, x: float, y: float, color: str, shape: str, title: str) -> None:
        self.items.append(("marker", x, y, color, shape, title))

    def text(self, x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> None:
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


# -- SVG ------------------------------------------------------------------------------------


def to_svg(fig: Figure, title: str) -> str:
    """The figure as an inline SVG element (escaped text, a <title> for accessibility)."""
    e = html.escape
    parts = [
        f'<svg viewBox="0 0 {fig.width} {fig.height}" width="{fig.width}" '
        f'height="{fig.height}" style="max-width:100%;height:auto" role="img" '
        f'aria-label="{e(title)}">',
        f"<title>{e(title)}</title>",
    ]
    for item in fig.items:
        kind = item[0]
        if kind == "line":
            _, x0, y0, x1, y1, color, width, dash = item
            dash_attr = f' stroke-dasharray="{dash}" class="limit"' if dash else ""
            parts.append(
                f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
                f'stroke="{color}" stroke-width="{width}"{dash_attr}/>'
            )
        elif kind == "polyline":
            _, points, color, width = item
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            if len(points) == 1:
                x, y = points[0]
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
            else:
                parts.append(
                    f'<polyline points="{coords}" fill="none" stroke="{color}" '
                    f'stroke-width="{width}" stroke-linejoin="round"/>'
                )
            for x, y in points if len(points) <= 60 else []:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        elif kind == "marker":
            _, x, y, color, shape, label = item
            tip = f"<title>{e(label)}</title>"
            if shape == "x":
                parts.append(
                    f'<g class="violation" stroke="{color}" stroke-width="2.5">{tip}'
                    f'<line x1="{x - 6:.1f}" y1="{y - 6:.1f}" x2="{x + 6:.1f}" y2="{y + 6:.1f}"/>'
                    f'<line x1="{x - 6:.1f}" y1="{y + 6:.1f}" x2="{x + 6:.1f}" y2="{y - 6:.1f}"/>'
                    "</g>"
                )
            else:
                parts.append(
                    f'<polygon class="violation" points="{x - 7:.1f},{y - 6:.1f} '
                    f'{x + 7:.1f},{y - 6:.1f} {x:.1f},{y + 6:.1f}" fill="{color}">{tip}</polygon>'
                )
        elif kind == "text":
            _, x, y, text, anchor, size = item
            parts.append(
                f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                f'fill="#333">{e(text)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


# -- PNG ------------------------------------------------------------------------------------


def _rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


class Canvas:
    """An RGB pixel buffer with just enough drawing for charts, encoded as PNG."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: float, y: float, rgb: tuple[int, int, int], size: float = 1) -> None:
        r = max(size / 2, 0.5)
        for yy in range(math.floor(y - r + 0.5), math.floor(y + r + 0.5)):
            for xx in range(math.floor(x - r + 0.5), math.floor(x + r + 0.5)):
                if 0 <= xx < self.width and 0 <= yy < self.height:
                    i = (yy * self.width + xx) * 3
                    self.pixels[i : i + 3] = bytes(rgb)

    def line(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        rgb: tuple[int, int, int],
        width: float = 1,
        dash: tuple[float, float] | None = None,
    ) -> None:
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(int(length * 2), 1)
        for i in range(steps + 1):
            t = i / steps
            if dash and (t * length) % (dash[0] + dash[1]) >= dash[0]:
                continue
            self.dot(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, rgb, width)

    def png(self) -> bytes:
        """PNG bytes: 8-bit RGB, no interlace, filter 0 on every row."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def to_png(fig: Figure) -> bytes:
    """Rasterise the figure's lines, curves and markers (its text is left to the HTML)."""
    canvas = Canvas(fig.width, fig.height)
    for item in fig.items:
        kind = item[0]
        if kind == "line":
            _, x0, y0, x1, y1, color, width, dash = item
            pattern = tuple(float(v) for v in dash.split()) if dash else None
            canvas.line(x0, y0, x1, y1, _rgb(color), width, pattern)  # type: ignore[arg-type]
        elif kind == "polyline":
            _, points, color, width = item
            for (ax, ay), (bx, by) in pairwise(points):
                canvas.line(ax, ay, bx, by, _rgb(color), width)
            if len(points) <= 60:
                for x, y in points:
                    canvas.dot(x, y, _rgb(color), 5)
        elif kind == "marker":
            _, x, y, color, shape, _label = item
            rgb = _rgb(color)
            if shape == "x":
                canvas.line(x - 6, y - 6, x + 6, y + 6, rgb, 3)
                canvas.line(x - 6, y + 6, x + 6, y - 6, rgb, 3)
            else:
                for row in range(13):
                    half = 7 * (1 - row / 12)
                    canvas.line(x - half, y - 6 + row, x + half, y - 6 + row, rgb, 1)
    return canvas.png()


# -- HTML -----------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{font-weight:600;padding:8px 12px;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea;color:#137333}.fail{background:#fce8e6;color:#a50e0e}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.pass,td.ok{color:#137333}td.fail{color:#a50e0e;font-weight:600}
td.warn,td.not_evaluated,td.skip{color:#b06000;font-weight:600}
td.not_applicable,td.not_selected{color:#777}
figure{margin:12px 0 20px}figcaption{font-weight:600;margin-bottom:4px}
.legend span{margin-right:14px;font-size:12px;white-space:nowrap}
.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.dash{border-top:2px dashed #d62728;height:0;background:none}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}
dt{font-weight:600}dd{margin:0}code{font-size:12px}
"""


def _cell(value: Any, cls: str = "") -> str:
    attr = f' class="{html.escape(cls)}"' if cls else ""
    return f"<td{attr}>{html.escape(str(value))}</td>"


def _gate_table(check: RunCheck) -> str:
    statuses = {inv.id: inv.status for inv in check.invariants}
    rows = [
        "<tr><th>gate</th><th>status</th><th>ship-blocking</th><th>required invariants</th>"
        "<th>contract</th></tr>"
    ]
    for g in check.gates:
        required = ", ".join(f"{r} ({statuses.get(r, 'not tracked')})" for r in g.requires)
        rows.append(
            f'<tr id="gate-{html.escape(g.id)}">{_cell(g.id)}{_cell(g.status, g.status)}'
            f"{_cell('yes' if g.ship_blocking else 'no')}{_cell(required)}{_cell(g.contract)}</tr>"
        )
    if not check.gates:
        rows.append('<tr><td colspan="5">no gates in the run\'s contracts</td></tr>')
    return '<table id="gates">' + "".join(rows) + "</table>"


def _invariant_table(check: RunCheck) -> str:
    rows = [
        "<tr><th>invariant</th><th>title</th><th>status</th><th>CI outcome</th>"
        "<th>ship-blocking</th><th>at</th><th>evaluations</th><th>violations</th>"
        "<th>worst observed vs limit</th><th>contract</th></tr>"
    ]
    for inv in check.invariants:
        rows.append(
            f'<tr id="inv-{html.escape(inv.id)}">{_cell(inv.id)}{_cell(inv.title)}'
            f"{_cell(inv.status, inv.status)}{_cell(inv.outcome, inv.outcome)}"
            f"{_cell('yes' if inv.ship_blocking else 'no')}{_cell(inv.at)}"
            f"{_cell(inv.evaluations)}{_cell(inv.violations)}{_cell(inv.worst_text())}"
            f"{_cell(inv.contract)}</tr>"
        )
    return '<table id="invariants">' + "".join(rows) + "</table>"


def _violation_table(check: RunCheck, limit: int = 200) -> str:
    events = [e for e in check.events if e.get("event") in ("violation", "warning")]
    if not events:
        return "<p>No violation or warning events in evidence.jsonl.</p>"
    rows = [
        "<tr><th>event</th><th>invariant</th><th>at</th><th>step</th><th>epoch</th>"
        "<th>observed vs limit</th><th>detail</th><th>hint</th></tr>"
    ]
    for e in events[:limit]:
        rows.append(
            "<tr>"
            + _cell(e.get("event"), "fail" if e.get("event") == "violation" else "warn")
            + _cell(e.get("invariant"))
            + _cell(e.get("at"))
            + _cell(e.get("step") if e.get("step") is not None else "")
            + _cell(e.get("epoch") if e.get("epoch") is not None else "")
            + _cell(describe_decision(e))
            + _cell(e.get("detail", ""))
            + _cell(e.get("hint", ""))
            + "</tr>"
        )
    more = f"<p>… {len(events) - limit} more in evidence.jsonl</p>" if len(events) > limit else ""
    return '<table id="violations">' + "".join(rows) + "</table>" + more


def _legend(chart: Chart) -> str:
    e = html.escape
    items = [
        f'<span><i class="sw" style="background:{s.color}"></i>{e(s.label)}</span>'
        for s in chart.series
    ]
    items += [
        f'<span class="limit-label"><i class="sw dash"></i>{e(lim.label)}</span>'
        for lim in chart.limits
    ]
    for m in chart.marks:
        symbol = "✕" if m.y is not None else "▼ (not finite)"
        items.append(f'<span style="color:{m.color}">{symbol} {e(m.label)}</span>')
    return '<p class="legend">' + "".join(items) + "</p>"


def render_report(run_dir: str | Path, out: str | Path) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` and ``<stem>-<chart>.png`` beside it.

    Raises :class:`traingate.runcheck.RunDirError` when the run dir or verdict is unreadable.
    """
    run_dir, out = Path(run_dir), Path(out)
    check = check_run(run_dir)
    rows, metrics_note = read_metrics(run_dir)
    charts, notes = build_charts(check, rows)
    notes = ([metrics_note] if metrics_note else []) + notes + check.notes
    out.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    v = check.verdict
    figures = []
    for chart in charts:
        fig = layout(chart)
        png_name = f"{out.stem}-{chart.key}.png"
        (out.parent / png_name).write_bytes(to_png(fig))
        figures.append(
            f'<figure id="chart-{chart.key}"><figcaption>{e(chart.title)}</figcaption>'
            f"{to_svg(fig, chart.title)}{_legend(chart)}"
            f'<p class="png">PNG: <a href="{e(png_name)}">{e(png_name)}</a></p></figure>'
        )
    if not figures:
        figures.append("<p>No curves: the run recorded no metrics.</p>")
    verdict_cls = "ok" if check.ok else "fail"
    verdict_text = "PASS: the run may ship" if check.ok else "FAIL: the run may not ship"
    failures = "".join(f"<li>{e(f)}</li>" for f in check.failures)
    contracts = ", ".join(f"{k}@{ver}" for k, ver in (v.get("contracts") or {}).items())
    regime = v.get("regime") or {}
    facts = {
        "run dir": str(run_dir),
        "contracts": contracts or "—",
        "regime": ", ".join(f"{k}={val}" for k, val in regime.items()) or "—",
        "params": ", ".join(f"{k}={val}" for k, val in (v.get("params") or {}).items()) or "—",
        "evaluations": v.get("evaluations"),
        "last step / epoch": f"{v.get('last_step')} / {v.get('last_epoch')}",
    }
    if check.audit:
        facts["audited log"] = (
            f"{check.audit.get('source')} ({check.audit.get('replayed')} of "
            f"{check.audit.get('rows')} rows replayed)"
        )
    fact_html = "".join(f"<dt>{e(k)}</dt><dd>{e(str(val))}</dd>" for k, val in facts.items())
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>traingate report: {e(str(run_dir))}</title>
<style>{CSS}</style></head>
<body>
<h1>traingate run report</h1>
<p class="verdict {verdict_cls}" id="verdict">{e(verdict_text)}</p>
{f'<ul id="failures">{failures}</ul>' if failures else ""}
<dl>{fact_html}</dl>
<h2>Curves</h2>
{"".join(figures)}
<h2>Gates</h2>
{_gate_table(check)}
<h2>Invariants</h2>
{_invariant_table(check)}
<h2>Violations and warnings</h2>
{_violation_table(check)}
{f'<h2>Notes</h2><ul id="notes">{note_html}</ul>' if note_html else ""}
</body></html>
"""
    out.write_text(document, encoding="utf-8")
    return out
