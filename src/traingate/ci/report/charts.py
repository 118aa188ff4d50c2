"""Route a run's metric series, limits and violations to the report's charts.

The charts: training loss per step, validation loss per epoch, and, when the run
recorded them, the gradient norm, the learning rate (``lr``), the throughput
(``tokens_per_sec``) and the loss-component shares. A limit is plotted on the chart
whose curve is the quantity its check compares, as the kind declares in
``Check.drawing`` (``loss`` → training loss, ``val_loss`` → validation loss,
``grad_norm`` → gradient norm, ``component_shares`` → the loss-component shares at the
invariant's point), and only where it applied (:mod:`traingate.ci.report.limits`). A run
dir records limits for decisions it kept (each invariant's ``worst`` and ``last``
evaluation in the verdict and every violation event) and, in metrics.parquet, a series
``limit/<INVARIANT>`` with a row each time the limit changed, drawn when present. Kinds
that declare no drawing are listed in the notes when they recorded a numeric limit.
Violations are marked where they happened, their message on hover.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from traingate.checks import REGISTRY
from traingate.checks.base import Check, LimitDrawing
from traingate.ci.report.limits import limit_lines, number, x_of
from traingate.ci.report.model import (
    PALETTE,
    VIOLATION_COLOR,
    WARNING_COLOR,
    Chart,
    Mark,
    Series,
)
from traingate.ci.runcheck import InvariantResult, RunCheck
from traingate.metrics.balance import component_shares

Points = list[tuple[float, float]]
# the chart of each quantity a kind may declare (component shares depend on the point)
QUANTITY_CHART = {"loss": "train", "val_loss": "val", "grad_norm": "grad"}


def _collect(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Points]:
    series: dict[tuple[str, str], Points] = {}
    for row in rows:
        x = x_of(row["point"], row["step"], row["epoch"])
        if x is not None:
            series.setdefault((row["point"], row["name"]), []).append((x, float(row["value"])))
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


def _shares(series: Mapping[tuple[str, str], Points], point: str, prefix: str) -> list[Series]:
    """Each component's share of the summed magnitudes at every x (``component_shares``)."""
    names = sorted(n for p, n in series if p == point and n.startswith(prefix))
    table: dict[float, dict[str, float]] = {}
    for name in names:
        for x, v in series[(point, name)]:
            table.setdefault(x, {})[name[len(prefix) :]] = v
    per_name: dict[str, Points] = {}
    for x in sorted(table):
        for name, share in component_shares(table[x]).items():
            per_name.setdefault(name, []).append((x, share))
    return [
        Series(f"share of {name}", pts, PALETTE[i % len(PALETTE)])
        for i, (name, pts) in enumerate(sorted(per_name.items()))
    ]


def _charts(series: Mapping[tuple[str, str], Points]) -> dict[str, Chart]:
    """The charts this run has a curve for, by key, in report order."""

    def curve(point: str, name: str) -> list[Series]:
        return [Series(name, series.get((point, name), []), PALETTE[0])]

    specs = [
        ("train", "Training loss per step", "step", curve("step", "loss")),
        ("val", "Validation loss per epoch", "epoch", curve("validation", "val_loss")),
        ("grad", "Gradient norm per step", "step", curve("step", "grad_norm")),
        ("lr", "Learning rate per step", "step", curve("step", "lr")),
        ("throughput", "Throughput per step (tokens/s)", "step", curve("step", "tokens_per_sec")),
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
    return {
        key: Chart(key, title, x_label, found)
        for key, title, x_label, found in specs
        if any(s.points for s in found)
    }


def flagged(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The violation and warning events among ``events``, in order."""
    return [e for e in events if e.get("event") in ("violation", "warning")]


def build_charts(
    check: RunCheck,
    rows: Sequence[Mapping[str, Any]],
    kept: Mapping[str, Sequence[Mapping[str, Any]]],
) -> tuple[list[Chart], list[str]]:
    """The report's charts, with limits and violations routed to them, and notes on what
    could not be drawn; ``kept`` holds each invariant's evaluations the verdict kept."""
    series = _collect(rows)
    charts = _charts(series)
    notes: list[str] = []
    for inv in check.invariants:
        events = [e for e in flagged(check.events) if e.get("invariant") == inv.id]
        notes += _route(inv, charts, series, [*kept.get(inv.id, []), *events], events)
    return list(charts.values()), notes


def chart_key(drawing: LimitDrawing | None, at: str) -> str | None:
    """The chart whose curve is the quantity a declared limit compares; None if undrawn."""
    if drawing is None:
        return None
    if drawing.quantity == "component_shares":
        return "val_shares" if at == "validation" else "train_shares"
    return QUANTITY_CHART.get(drawing.quantity)


def _route(
    inv: InvariantResult,
    charts: Mapping[str, Chart],
    series: Mapping[tuple[str, str], Points],
    decisions: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Put one invariant's limits and marks on the charts; notes on what is not drawn."""
    kind = REGISTRY.get(inv.check, Check)
    key = chart_key(kind.drawing, inv.at)
    target = charts.get(key) if key else None
    exact = series.get((_series_point(inv.at), f"limit/{inv.id}"))
    notes = []
    if target is not None:
        curve_xs = [x for s in target.series for x, _ in s.points]
        lines = limit_lines(inv.id, kind, inv.at, decisions, exact, curve_xs)
        target.limits += lines
        # a kind that names its first evaluation's limit apart (e.g. an epoch-0 cap) says so
        # when the run dir kept no record of that first limit
        first = kind.limit_label(0.0)
        if (
            first != kind.limit_label(1.0)
            and not exact
            and inv.evaluations
            and not any(line.name == first for line in lines)
        ):
            notes.append(
                f"{inv.id}: the {first} is not drawn: this run dir did not record it "
                "(the verdict keeps the worst and last evaluations, evidence the violations)"
            )
    elif inv.evaluations and any(number(d.get("limit")) is not None for d in decisions):
        notes.append(
            f"{inv.id} ({inv.check}): limit not drawn"
            + ("; its quantity is not one of the charts" if key is None else "; no curve")
        )
    # an undrawn kind's marks go on the curve of its point: validation and final (where the
    # last val loss is judged) on the val loss, steps on the training loss
    fallback = charts.get("train" if inv.at == "step" else "val") or next(
        iter(charts.values()), None
    )
    for event in events:
        chart = target or fallback
        if chart is not None:
            chart.marks.append(_mark(inv.id, event, chart, own=chart is target))
    return notes


def _series_point(at: str) -> str:
    return at if at in ("step", "validation") else "final"


def _mark(inv_id: str, event: Mapping[str, Any], chart: Chart, own: bool) -> Mark:
    x = number(event.get("epoch") if chart.x_label == "epoch" else event.get("step"))
    if x is None:
        x = max((p[0] for s in chart.series for p in s.points), default=0.0)
    y = number(event.get("observed")) if own else _curve_at(chart, x)
    if y is not None and not math.isfinite(y):
        y = None
    color = VIOLATION_COLOR if event.get("event") == "violation" else WARNING_COLOR
    label = f"{inv_id} {event.get('event')}: {event.get('detail', '')}"
    return Mark(x, y, label, color)


def _curve_at(chart: Chart, x: float) -> float | None:
    """The first curve's value at ``x``, else at its last point before ``x`` (a final-point
    mark sits after the last step drawn); None when the curve starts after ``x``."""
    for s in chart.series:
        before = [(px, py) for px, py in s.points if px <= x]
        if before:
            return max(before)[1]
    return None
