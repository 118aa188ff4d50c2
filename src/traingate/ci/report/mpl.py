"""A chart's PNG drawn with matplotlib (the ``report`` extra): axes, ticks, labels, legend.

It draws the same :class:`Chart` on the same :class:`~traingate.ci.report.ticks.Scale`
(ranges, log or linear axis, ticks and their labels) as the SVG, so the PNG and the page
agree. Without matplotlib, :func:`available` is False and the report falls back to the
built-in rasteriser (:mod:`traingate.ci.report.png`), which has no text.
"""

from __future__ import annotations

import importlib.util
import io
import math

from traingate.ci.report.figure import HEIGHT, WIDTH, chart_scale
from traingate.ci.report.model import LIMIT_COLOR, Chart

DPI = 100
LEGEND_CHARS = 90  # a legend entry longer than this is cut (the page has it whole)


def available() -> bool:
    """Whether matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def _short(text: str) -> str:
    return text if len(text) <= LEGEND_CHARS else text[: LEGEND_CHARS - 1] + "…"


def chart_png(chart: Chart) -> bytes:
    """The chart as a PNG of :data:`WIDTH` × :data:`HEIGHT` pixels plus room for the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = chart_scale(chart)
    entries = len(chart.series) + len(chart.limits) + min(len(chart.marks), 1)
    rows = math.ceil(entries / 2)
    legend_px = 18 * rows + 8
    fig = Figure(figsize=(WIDTH / DPI, (HEIGHT + legend_px) / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    bottom = (34 + legend_px) / (HEIGHT + legend_px)
    ax = fig.add_axes((64 / WIDTH, bottom, 1 - 80 / WIDTH, 1 - bottom - 28 / (HEIGHT + legend_px)))
    ax.set_title(chart.title, fontsize=10, loc="left")
    ax.set_xlabel(chart.x_label, fontsize=9)
    if scale.log:
        ax.set_yscale("log")
    ax.set_xlim(scale.x_lo, scale.x_hi)
    ax.set_ylim(scale.y_lo, scale.y_hi)
    ax.set_xticks(scale.x_ticks, scale.x_labels(), fontsize=8)
    ax.set_yticks(scale.y_ticks, scale.y_labels(), fontsize=8)
    ax.minorticks_off()
    ax.grid(True, color="#e4e4e4", linewidth=0.8)
    for s in chart.series:
        xs, ys = zip(*s.points, strict=True) if s.points else ((), ())
        ax.plot(
            xs,
            ys,
            color=s.color,
            linewidth=1.6,
            label=_short(s.label),
            marker="o" if len(s.points) <= 60 else None,
            markersize=3,
        )
    reach = (scale.x_hi - scale.x_lo) * 0.012
    for lim in chart.limits:
        label = _short(lim.label)
        for x0, x1, y in lim.segments:
            lo = scale.x_lo if x0 is None else x0
            hi = scale.x_hi if x1 is None else x1
            if hi - lo < 2 * reach:
                lo, hi = lo - reach, hi + reach
            ax.plot([lo, hi], [y, y], color=LIMIT_COLOR, linestyle="--", linewidth=1.6, label=label)
            label = "_"
        if lim.path:
            xs, ys = zip(*lim.path, strict=True)
            ax.plot(xs, ys, color=LIMIT_COLOR, linestyle="--", linewidth=1.0, label=label)
        for x0, x1, low, high in lim.bands:
            lo, hi = (x0 - reach, x1 + reach) if x1 - x0 < 2 * reach else (x0, x1)
            ax.fill_between(
                [lo, hi],
                [low, low],
                [high, high],
                color=LIMIT_COLOR,
                alpha=0.18,
                edgecolor=LIMIT_COLOR,
                linestyle="--",
                label=label,
            )
            label = "_"
            for y in (low, high):
                ax.plot([lo, hi], [y, y], color=LIMIT_COLOR, linestyle="--", linewidth=1.6)
    for i, m in enumerate(chart.marks):
        y = m.y if m.y is not None else scale.y_hi
        ax.plot(
            [m.x],
            [y],
            marker="x" if m.y is not None else "v",
            color=m.color,
            markersize=9,
            markeredgewidth=2.4,
            linestyle="none",
            label=_short(
                m.label
                if len(chart.marks) == 1
                else f"{len(chart.marks)} violations/warnings (see the page)"
            )
            if i == 0
            else "_",
        )
    fig.legend(
        loc="lower left", ncols=2, fontsize=7.5, frameon=False, bbox_to_anchor=(48 / WIDTH, 0.0)
    )
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
