"""Where one invariant's limit applied, as the lines, paths and bands a chart draws.

A limit is drawn only at the evaluations it applied to. With the exact series
(``limit/<INVARIANT>`` in metrics.parquet, one row each time the limit changed) those are
the x values of the curve the limit bounds, from the first recorded limit to the
invariant's last evaluation, each holding the latest limit recorded at or before it;
without it, the evaluations the verdict and evidence kept. The kind's ``drawing``
(:class:`traingate.checks.base.LimitDrawing`) says how: ``once`` keeps the first
evaluation alone, ``moving`` draws one thin line through the limits, ``mirror`` a band
with both sides of a two-sided bound, and otherwise each run of equal limits over
consecutive evaluations is one dashed segment (a ``constant`` limit the run dir did not
record as a series runs across the chart).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from traingate.checks.base import Check, LimitDrawing
from traingate.ci.report.model import LimitLine
from traingate.ci.runcheck import fmt_number

Points = list[tuple[float, float]]
# at most this many distinct limit values are listed in a legend; more read "low … high"
LISTED_VALUES = 3


def x_of(point: str, step: Any, epoch: Any) -> float | None:
    """The x of a row or decision on a chart of ``point`` (epoch at validation, else step)."""
    value = epoch if point == "validation" else step
    if value is None and point == "validation":
        value = step
    return float(value) if isinstance(value, int | float) else None


def number(value: Any) -> float | None:
    """A float from a JSON value (``"nan"``/``"inf"`` strings included); None if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _recorded(
    point: str, decisions: Sequence[Mapping[str, Any]]
) -> list[tuple[float, float, Mapping[str, Any]]]:
    """(x, finite limit, decision) of each kept decision, by x."""
    found: dict[tuple[float, float], Mapping[str, Any]] = {}
    for entry in decisions:
        limit = number(entry.get("limit"))
        x = x_of(point, entry.get("step"), entry.get("epoch"))
        if limit is not None and x is not None and math.isfinite(limit):
            found.setdefault((x, limit), entry)
    return [(x, y, found[(x, y)]) for x, y in sorted(found)]


def _applied(
    drawing: LimitDrawing,
    exact: Points,
    curve_xs: Sequence[float],
    last: float | None,
) -> Points:
    """The limit at each evaluation, from the exact series (each value held until the next)."""
    held = [(x, y) for x, y in exact if math.isfinite(y)]
    if not held or drawing.once:
        return held[:1]
    end = max(held[-1][0], last if last is not None else max(curve_xs, default=held[-1][0]))
    xs = sorted({x for x in curve_xs if held[0][0] <= x <= end} | {x for x, _ in held})
    starts = [x for x, _ in held]
    return [(x, held[bisect.bisect_right(starts, x) - 1][1]) for x in xs]


def _where(axis: str, xs: Sequence[float]) -> str:
    """The evaluations, shortly: "step 0", "steps 3, 7", "steps 100–1999"."""
    if len(xs) == 1:
        return f"{axis} {fmt_number(xs[0])}"
    if len(xs) == 2:
        return f"{axis}s {fmt_number(xs[0])}, {fmt_number(xs[1])}"
    return f"{axis}s {fmt_number(min(xs))}–{fmt_number(max(xs))}"


def _shown(values: Sequence[float]) -> str:
    distinct = sorted(set(values))
    if len(distinct) <= LISTED_VALUES:
        return " / ".join(fmt_number(v) for v in distinct)
    return f"{fmt_number(distinct[0])} … {fmt_number(distinct[-1])}"


def _runs(points: Points) -> list[tuple[float, float, float]]:
    """Runs of equal limits over consecutive evaluations: (first x, last x, limit)."""
    runs: list[tuple[float, float, float]] = []
    for x, y in points:
        if runs and runs[-1][2] == y:
            runs[-1] = (runs[-1][0], x, y)
        else:
            runs.append((x, x, y))
    return runs


def _band(
    drawing: LimitDrawing,
    x: float,
    limit: float,
    by_x: Mapping[float, Sequence[Mapping[str, Any]]],
) -> tuple[float, float, float, float] | None:
    """Both sides of a bound symmetric about the decision metric ``drawing.mirror``."""
    for entry in by_x.get(x, ()):
        centre = number((entry.get("metrics") or {}).get(drawing.mirror))
        if centre is not None and math.isfinite(centre):
            low, high = sorted((limit, 2 * centre - limit))
            return (x, x, low, high)
    return None


def limit_lines(
    inv_id: str,
    kind: type[Check[Any]],
    at: str,
    decisions: Sequence[Mapping[str, Any]],
    exact: Points | None,
    curve_xs: Sequence[float],
) -> list[LimitLine]:
    """The lines, paths and bands of one invariant's limit (see the module docstring);
    ``curve_xs`` are the x values of the curve the limit bounds."""
    drawing = kind.drawing or LimitDrawing("")
    point = "validation" if at == "validation" else "step"
    axis = "epoch" if point == "validation" else "step"
    comparison = next((str(e["comparison"]) for e in decisions if e.get("comparison")), "")
    recorded = _recorded(point, decisions)
    last = max((x for x, *_ in recorded), default=None)
    if exact:
        applied = _applied(drawing, exact, curve_xs, last)
    else:
        applied = [(x, y) for x, y, _ in recorded][: 1 if drawing.once else None]
    by_x: dict[float, list[Mapping[str, Any]]] = {}
    for entry in decisions:
        x = x_of(point, entry.get("step"), entry.get("epoch"))
        if x is not None:
            by_x.setdefault(x, []).append(entry)
    groups: dict[str, Points] = {}
    for x, y in applied:
        groups.setdefault(kind.limit_label(x), []).append((x, y))
    lines = []
    for name, points in groups.items():
        xs = [x for x, _ in points]
        where = _where(axis, xs) if exact else f"recorded at {_where(axis, xs)}"
        bands = [b for x, y in points if drawing.mirror and (b := _band(drawing, x, y, by_x))]
        if bands:
            lows, highs = [b[2] for b in bands], [b[3] for b in bands]
            label = (
                f"{inv_id} {name}: {_shown(lows)} <= {drawing.quantity} <= {_shown(highs)} "
                f"({where})"
            )
            lines.append(LimitLine(name, label, bands=bands, invariant=inv_id))
        elif drawing.moving and len(points) > 1:
            label = (
                f"{inv_id} {name} {comparison} {_shown([y for _, y in points])}, moving ({where})"
            )
            lines.append(LimitLine(name, label, path=points, invariant=inv_id))
        else:
            segments: list[tuple[float | None, float | None, float]] = list(_runs(points))
            if drawing.constant and not exact and not drawing.once:
                segments = [(None, None, y) for y in sorted({y for _, y in points})]
            label = f"{inv_id} {name} {comparison} {_shown([y for _, y in points])} ({where})"
            lines.append(LimitLine(name, label, segments=segments, invariant=inv_id))
    return lines
