"""Axis scales and ticks: nice-number ticks, log ticks, labels that differ from each other.

A chart's y axis is logarithmic when every value on it is positive and they span at
least :data:`LOG_DECADES` decades (a gradient norm of 0.02 under a limit of 100 would sit
flat at 0 on a linear axis); otherwise linear with ticks of 1, 2 or 5 × 10^k (Heckbert's
nice numbers). Tick labels get the fewest decimals that keep them all distinct.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

LOG_DECADES = 2.0
PAD = 0.06  # of the span (linear) or of the decades (log) added above and below the data


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k), at least two when
    the span allows (a coarser step that leaves one tick is refined)."""
    span = hi - lo
    for target in (count, count * 2, count * 4):
        raw = span / max(target, 1)
        magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
        if integer:
            step = max(step, 1.0)
        ticks = []
        value = math.ceil(lo / step - 1e-9) * step
        while value <= hi + step * 1e-9:
            ticks.append(round(value, 12) + 0.0)
            value += step
        if len(ticks) >= 2 or integer:
            return ticks
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within [lo, hi] (every n-th when many), with 2× and 5× added when
    fewer than three decades show."""
    first, last = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    every = max(1, math.ceil((last - first + 1) / 8))
    ticks = [10.0**k for k in range(first, last + 1, every)]
    if len(ticks) < 3:
        extra = [m * 10.0**k for k in range(first - 1, last + 1) for m in (2, 5)]
        ticks = sorted(ticks + [t for t in extra if lo <= t <= hi])
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks as text with the fewest decimals (or, for very large or very small values,
    exponent digits) that make every label different."""
    top = max((abs(t) for t in ticks), default=0.0)
    scientific = top >= 1e5 or 0 < top < 1e-3
    labels: list[str] = []
    for digits in range(0, 13):
        labels = [f"{t:.{digits}e}" if scientific else f"{t:.{digits}f}" for t in ticks]
        labels = ["0" if float(text) == 0 else text for text in labels]
        if len(set(labels)) == len(labels):
            return labels
    return labels


@dataclass(frozen=True)
class Scale:
    """A chart's data ranges, whether its y axis is log, and its ticks with their labels."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    log: bool
    x_ticks: list[float]
    y_ticks: list[float]

    def x_labels(self) -> list[str]:
        """The x ticks' labels (steps or epochs)."""
        return tick_labels(self.x_ticks)

    def y_labels(self) -> list[str]:
        """The y ticks' labels, all distinct."""
        if self.log:
            wide = min(self.y_ticks, default=1.0) < 1e-3 or max(self.y_ticks, default=1.0) >= 1e5
            form = "{:.0e}" if wide else "{:g}"  # ticks are 1, 2 or 5 × 10^k: exact either way
            return [re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", form.format(t)) for t in self.y_ticks]
        return tick_labels(self.y_ticks)

    def y_fraction(self, y: float) -> float:
        """Where ``y`` sits between the bottom (0) and the top (1) of the axis."""
        if self.log:
            y = max(y, self.y_lo)
            return (math.log10(y) - math.log10(self.y_lo)) / (
                math.log10(self.y_hi) - math.log10(self.y_lo)
            )
        return (y - self.y_lo) / (self.y_hi - self.y_lo)

    def x_fraction(self, x: float) -> float:
        """Where ``x`` sits between the left (0) and the right (1) of the axis."""
        return (x - self.x_lo) / (self.x_hi - self.x_lo)


def spans_decades(ys: Sequence[float]) -> bool:
    """Every value positive and at least :data:`LOG_DECADES` decades between the extremes."""
    return bool(ys) and min(ys) > 0 and math.log10(max(ys) / min(ys)) >= LOG_DECADES


def make_scale(xs: Sequence[float], ys: Sequence[float]) -> Scale:
    """The scale of a chart showing points at ``xs`` and values ``ys`` (finite ones)."""
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    x_ticks = nice_ticks(max(x_lo, 0.0) if x_lo >= 0 else x_lo, x_hi, 8, True)
    if spans_decades(ys):
        lo, hi = math.log10(min(ys)), math.log10(max(ys))
        pad = (hi - lo) * PAD
        y_lo, y_hi = 10 ** (lo - pad), 10 ** (hi + pad)
        return Scale(x_lo, x_hi, y_lo, y_hi, True, x_ticks, log_ticks(y_lo, y_hi))
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (y_hi - y_lo) * PAD or (abs(y_hi) * 0.1 or 1.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    return Scale(x_lo, x_hi, y_lo, y_hi, False, x_ticks, nice_ticks(y_lo, y_hi))
