"""One self-contained HTML report of a run dir, plus a PNG of each chart beside it.

The HTML has inline CSS and inline SVG charts (no script, no external URL): the training
loss per step, the validation loss per epoch, and, when the run recorded them, the
gradient norm, the learning rate, the throughput and the loss-component shares. Limits
are drawn only where they applied and violations are marked where they happened (their
message on hover); the gate and invariant tables follow.

Modules, in the order a report is made: ``reading`` (metrics rows; every verdict read is
``reading.verdict_view``), ``charts`` (routing series, limits and violations to charts,
as each kind's ``Check.drawing`` declares), ``limits`` (where each limit applied: lines,
moving paths, two-sided bands), ``ticks`` (linear or log scale, nice ticks, distinct
labels), ``figure`` (pixel layout, decimation), ``svg``, ``mpl`` (PNGs with text, when
matplotlib is installed) and ``png`` (the built-in fallback), ``html`` (the page),
``render``.
"""

from traingate.ci.report.model import LIMIT_COLOR
from traingate.ci.report.png import Canvas
from traingate.ci.report.render import render_report

__all__ = ["LIMIT_COLOR", "Canvas", "render_report"]
