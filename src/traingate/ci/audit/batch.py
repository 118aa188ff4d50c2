"""Step invariants decided over whole columns at once, for a fast ``contracts audit`` replay.

A step log whose every row hands the Guard the same observations (every mapped value,
NaN when empty) lets each step kind compute, for all rows at once, what its streaming
:class:`~traingate.checks.base.Check` would decide row by row: which rows it evaluates,
which pass, how far past its limit each is (``excess_of``'s number, for the worst
observation) and the limit (for ``limit/…`` metrics). The :class:`Series` also builds any
row's real :class:`Decision` by calling the kind's own pure ``check_<kind>`` with that
row's inputs (streaks, window sums) — the replay does so only for the rows it records, so
messages are the streaming ones. A kind or case not vectorised here, or whose first
decision disagrees with the arrays, is replayed through its own Check (:func:`streamed`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from traingate.checks import Check, Decision
from traingate.checks.expression import Expression, check_expression
from traingate.checks.finite import Finite, check_finite
from traingate.checks.gradient_norm import GradientNorm, check_gradient_norm
from traingate.checks.initial_loss import InitialLoss, check_initial_loss
from traingate.checks.loss_spike import LossSpike, check_loss_spike
from traingate.checks.metrics_present import MetricsPresent, check_metrics_present
from traingate.checks.no_placeholder import NoPlaceholder, Repeat, check_no_placeholder
from traingate.contract.formula import Bin, Compare, FormulaError, Neg, Node, Num, Sym
from traingate.runtime.binding import EXCESS_SIGN, excess_of

Columns = Mapping[str, np.ndarray]  # observation → one value per row (NaN when empty)
# Python's sum() of floats adds left to right before 3.12 (compensated from 3.12 on)
SEQUENTIAL_SUM = sys.version_info < (3, 12)


class Unvectorised(Exception):
    """This kind or these params have no exact column form here: replay its Check."""


@dataclass
class Series:
    """One step invariant's decisions over ``n`` rows (``ok`` is True where not evaluated;
    ``limit`` is NaN where ``has_limit`` is False) and the Decision of any evaluated row."""

    evaluated: np.ndarray
    ok: np.ndarray
    excess: np.ndarray
    limit: np.ndarray
    has_limit: np.ndarray
    decision: Callable[[int], Decision]

    def agrees(self, i: int) -> bool:
        """Whether row ``i``'s real decision is what the arrays say (a self-check)."""
        d = self.decision(i)
        same_limit = (d.limit is None) == (not self.has_limit[i]) and (
            d.limit is None or _same(d.limit, float(self.limit[i]))
        )
        return bool(d.ok) == bool(self.ok[i]) and same_limit and _same(excess_of(d), self.excess[i])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def excess(
    ok: np.ndarray, observed: np.ndarray, limit: np.ndarray | None, sign: float | np.ndarray
) -> np.ndarray:
    """:func:`excess_of` over rows: ``sign`` · (observed − limit); +inf for a non-finite
    observation; ±inf (failed / passed) where there is no limit (``limit`` None)."""
    if limit is None:
        return np.where(ok, -np.inf, np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        value = np.subtract(observed, limit)  # in place from here: less memory to touch
        if not isinstance(sign, float) or sign != 1.0:
            value *= sign
    finite = np.isfinite(observed)
    if not finite.all():  # (the common case, every observation finite, writes nothing)
        value[~finite] = np.inf
    return value


def run_lengths(flag: np.ndarray) -> np.ndarray:
    """At each row, how many consecutive rows up to and including it have ``flag`` set."""
    dtype = np.int32 if len(flag) < 1 << 31 else np.int64
    if not flag.any():  # the common case (no streak at all): no pass over the rows
        return np.zeros(len(flag), dtype)
    index = np.arange(len(flag), dtype=dtype)
    return index - np.maximum.accumulate(np.where(flag, -1, index))


def before(run: np.ndarray) -> np.ndarray:
    """A streak as it stood before each row (0 before the first)."""
    return np.concatenate([np.zeros(1, run.dtype), run[:-1]]) if len(run) else run


def every(n: int, value: Any) -> np.ndarray:
    """``value`` at each of ``n`` rows, as a read-only view (no memory per row)."""
    return np.broadcast_to(np.asarray(value), (n,))


def _row(columns: Columns, names: list[str], i: int) -> dict[str, float]:
    return {n: float(columns[n][i]) for n in names}


def finite_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``finite``: every listed observation the rows carry is finite."""
    names = [o for o in check.params.observations if o in columns]
    if not names:
        raise Unvectorised("no listed observation")
    ok = np.logical_and.reduce([np.isfinite(columns[o]) for o in names])
    return Series(
        every(n, True),
        ok,
        excess(ok, every(n, np.nan), None, 1.0),
        every(n, np.nan),
        every(n, False),
        lambda i: check_finite(observed=_row(columns, names, i), params=check.params),
    )


def gradient_norm_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``gradient_norm``: the out-of-range streak (non-finite counts as exploding)."""
    params, context = check.params, check.context
    norm = columns["grad_norm"]
    lo, hi = context.resolve(params.min_norm).value, context.resolve(params.max_norm).value
    exploding = ~np.isfinite(norm) | (norm > hi)
    vanishing = ~exploding & (norm < lo)
    run = run_lengths(exploding | vanishing)
    streak = before(run)
    ok = run < params.patience
    low = vanishing.any()
    limit = np.where(vanishing, lo, hi) if low else every(n, hi)
    return Series(
        every(n, True),
        ok,
        excess(ok, norm, limit, np.where(vanishing, -1.0, 1.0) if low else 1.0),
        limit,
        every(n, True),
        lambda i: check_gradient_norm(
            norm=float(norm[i]), streak=int(streak[i]), params=params, context=context
        ),
    )


def window_sums(finite: np.ndarray, window: int) -> np.ndarray:
    """``loss_spike``'s running sum after each number of pushes k (index k, for k ≥ window),
    exactly as its ring buffer keeps it: re-added with Python's ``sum`` every ``window``
    pushes, one subtraction and one addition per push in between. Each block of pushes
    gets the very float operations, in their order: all blocks at once, a push at a time
    (:func:`_sums_by_push`), or, with fewer blocks than pushes in one, one sequential
    ``np.add.accumulate`` row per block (:func:`_sums_by_block`)."""
    total = len(finite)
    sums = np.full(total + 1, np.nan)
    blocks = total // window
    if blocks == 0:
        return sums
    padded = np.concatenate([finite, np.zeros((blocks + 1) * window - total)])
    by = _sums_by_push if blocks >= window else _sums_by_block
    # row b: the sums after (b+1)·w + j pushes; row by row, that is after w, w + 1, …
    # pushes; the last block's padding lies past the end
    sums[window:] = by(padded, blocks, window).reshape(-1)[: total + 1 - window]
    return sums


def _sums_by_block(padded: np.ndarray, blocks: int, window: int) -> np.ndarray:
    """Block b's running sums in row b, as one ``np.add.accumulate`` row of its pushes."""
    width = window - 1  # the pushes of a block after its re-add
    oldest = padded[: blocks * window].reshape(blocks, window)  # row b: pushes b·w … b·w+w-1
    newest = padded[window : (blocks + 1) * window].reshape(blocks, window)
    # row b: 0, + the window's losses (the re-add), then (− oldest, + newest) per later push
    steps = np.empty((blocks, 1 + window + 2 * width))
    if SEQUENTIAL_SUM:  # sum() adds 0 + each loss, left to right: that very accumulate
        steps[:, 0], steps[:, 1 : window + 1] = 0.0, oldest
    else:  # a compensated sum(): its own result, then + 0.0s (exact: it is never −0.0)
        steps[:, 0], steps[:, 1 : window + 1] = [sum(row.tolist()) for row in oldest], 0.0
    head = window + 1
    steps[:, head::2] = -oldest[:, :width]
    steps[:, head + 1 :: 2] = newest[:, :width]
    return np.add.accumulate(steps, axis=1)[:, head - 1 :: 2]


def _sums_by_push(padded: np.ndarray, blocks: int, window: int) -> np.ndarray:
    """Block b's running sums in row b, every block's at once: one vector addition or
    subtraction per push, each block's own in its order, over the pushes laid out by
    position in the block (row k: each block's k-th push; contiguous, so vectorised)."""
    pushes = padded.reshape(blocks + 1, window).T.copy()
    oldest, newest = pushes[:, :blocks], pushes[:, 1:]  # block b's pushes, then b+1's
    if SEQUENTIAL_SUM:  # sum() adds 0 + each loss, left to right
        running = np.zeros(blocks)
        for k in range(window):
            running += oldest[k]
    else:  # a compensated sum(): its own result (never −0.0)
        rows = padded[: blocks * window].reshape(blocks, window)
        running = np.array([sum(row.tolist()) for row in rows])
    ran = np.empty((window, blocks))
    ran[0] = running
    for j in range(window - 1):
        running -= oldest[j]
        running += newest[j]
        ran[j + 1] = running
    return ran.T


def loss_spike_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``loss_spike``: each row against the mean of the ``window`` finite losses before it."""
    params, context = check.params, check.context
    loss = columns["loss"]
    window = params.window
    finite = np.isfinite(loss)
    every_row = bool(finite.all())  # the common case: no copy, no gather
    pushed = np.arange(n) if every_row else np.cumsum(finite) - finite  # finite losses before
    evaluated = pushed >= window
    sums = window_sums(loss if every_row else loss[finite], window)
    sums = sums[:n] if every_row else sums[pushed]
    factor = context.resolve(params.spike_factor).value
    with np.errstate(invalid="ignore", over="ignore"):
        limit = factor * (sums / window)
        spike = evaluated & (~finite | (loss >= limit))
    run = run_lengths(spike)
    consecutive = before(run)
    ok = ~evaluated | (run <= params.patience)
    limit = np.where(evaluated, limit, np.nan)
    return Series(
        evaluated,
        ok,
        excess(ok, loss, limit, 1.0),
        limit,
        evaluated,
        lambda i: check_loss_spike(  # type: ignore[return-value]
            loss=float(loss[i]),
            window_sum=float(sums[i]),
            window_count=min(int(pushed[i]), window),
            consecutive=int(consecutive[i]),
            params=params,
            context=context,
        ),
    )


def _columnar(node: Node, columns: Columns, scope: Mapping[str, float]) -> Any:
    """A formula side over rows (a float when it names no column): ``+ − ×``, negation, and
    division by a non-zero constant only, where float arithmetic raises nothing."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Sym):
        if node.name in columns:
            return columns[node.name]
        if node.name not in scope:
            raise Unvectorised(f"unknown symbol {node.name}")
        return float(scope[node.name])
    if isinstance(node, Neg):
        return -_columnar(node.operand, columns, scope)
    if isinstance(node, Bin) and node.op in ("+", "-", "*", "/"):
        left, right = _columnar(node.left, columns, scope), _columnar(node.right, columns, scope)
        if node.op == "/" and (not isinstance(right, float) or right == 0.0):
            raise Unvectorised("division by a column or by zero")
        with np.errstate(all="ignore"):
            if node.op == "+":
                return left + right
            if node.op == "-":
                return left - right
            return left * right if node.op == "*" else left / right
    raise Unvectorised(f"formula node {type(node).__name__}")


RELATION = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def expression_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``expression``: the predicate over the metric columns (arithmetic that cannot raise)."""
    params, context = check.params, check.context
    names = list(params.metrics)
    if any(m not in columns for m in names):
        raise Unvectorised("a metric is not a column")
    tree = params.predicate.tree
    if not isinstance(tree, Compare):
        raise Unvectorised("not a comparison")
    scope, metrics = context.symbols(), {m: columns[m] for m in names}
    left = np.broadcast_to(np.asarray(_columnar(tree.left, metrics, scope), float), (n,))
    right = np.broadcast_to(np.asarray(_columnar(tree.right, metrics, scope), float), (n,))
    ok = RELATION[tree.op](left, right)
    sign = EXCESS_SIGN.get(tree.op)
    return Series(
        every(n, True),
        ok,
        excess(ok, left, right, sign) if sign is not None else excess(ok, left, None, 1),
        right,
        every(n, True),
        lambda i: check_expression(  # type: ignore[return-value]
            metric_values=_row(columns, names, i), params=params, context=context
        ),
    )


def initial_loss_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``initial_loss``: the first row's loss alone is judged."""
    d = check_initial_loss(
        loss=float(columns["loss"][0]), params=check.params, context=check.context
    )
    first, limit, worst = np.zeros(n, bool), np.full(n, np.nan), np.full(n, -np.inf)
    first[0], worst[0] = True, excess_of(d)
    if d.limit is not None:
        limit[0] = d.limit
    return Series(
        first,
        every(n, True) if d.ok else ~first,
        worst,
        limit,
        first if d.limit is not None else np.zeros(n, bool),
        lambda i: d,
    )


def no_placeholder_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``no_placeholder``: exact-repeat streaks per observation and of the fingerprint."""
    params = check.params
    if not any(o in columns for o in check.observes_any()):
        raise Unvectorised("no observation of the kind")
    listed = [o for o in params.observations if o in columns]
    counts = {}
    for o in listed:
        v = columns[o]
        same = np.concatenate([[False], v[1:] == v[:-1]])
        counts[o] = np.where(np.isnan(v), 0, run_lengths(same) + 1)
    fingerprint = params.fingerprint
    if fingerprint and any(o in columns for o in fingerprint):
        matched = np.logical_and.reduce(
            [
                columns[o] == value if o in columns else np.zeros(n, bool)
                for o, value in fingerprint.items()
            ]
        )
        streak = run_lengths(matched)
    else:
        streak = every(n, 0)
    window = params.window
    longest = reduce(np.maximum, [counts[o] for o in listed]) if listed else every(n, 0)
    if fingerprint:
        observed = np.where(streak >= window, streak, np.maximum(longest, streak)).astype(float)
        held = (streak < window) & (longest < window)
    else:  # no fingerprint streak (window ≥ 2 > 0): the longest repeat alone, never < 0
        observed, held = longest.astype(float), longest < window
    evaluated = np.arange(1, n + 1) >= window
    ok = ~evaluated | held
    limit = np.where(evaluated, float(window), np.nan)

    def decision(i: int) -> Decision:
        repeats = {o: Repeat(float(columns[o][i]), int(counts[o][i])) for o in listed}
        return check_no_placeholder(  # type: ignore[return-value]
            repeats=repeats,
            fingerprint_streak=int(streak[i]),
            seen=i + 1,
            params=params,
            context=check.context,
        )

    return Series(evaluated, ok, excess(ok, observed, limit, 1.0), limit, evaluated, decision)


def metrics_present_series(check: Check[Any], columns: Columns, n: int) -> Series:
    """``metrics_present``: every listed metric carried and finite (an unmapped one never is)."""
    names = list(check.params.observations)
    failed = np.zeros(n)
    for o in names:
        failed += ~np.isfinite(columns[o]) if o in columns else 1.0
    ok = failed == 0
    limit = every(n, 0.0)

    def decision(i: int) -> Decision:
        observed = {o: float(columns[o][i]) if o in columns else None for o in names}
        return check_metrics_present(observed=observed, params=check.params)

    return Series(
        every(n, True), ok, excess(ok, failed, limit, 1.0), limit, every(n, True), decision
    )


def streamed(check: Check[Any], columns: Columns, steps: np.ndarray, n: int) -> Series:
    """Any step kind, through its own Check row by row (the exact fallback)."""
    names = list(columns)
    decisions: list[Decision | None] = []
    for i in range(n):
        obs: dict[str, Any] = {k: float(columns[k][i]) for k in names}
        obs["step"] = int(steps[i])
        check.update(obs)
        decisions.append(check.verdict())
    evaluated = np.array([d is not None for d in decisions], bool)
    ok = np.array([d is None or d.ok for d in decisions], bool)
    has_limit = np.array([d is not None and d.limit is not None for d in decisions], bool)
    limit = np.array(
        [d.limit if d is not None and d.limit is not None else math.nan for d in decisions]
    )
    worst = np.array([excess_of(d) if d is not None else -math.inf for d in decisions])
    return Series(evaluated, ok, worst, limit, has_limit, lambda i: decisions[i])  # type: ignore[return-value]


# each vectorised kind (by its class: the audit names no kind) and its column form
BATCH: dict[type[Check[Any]], Callable[[Check[Any], Columns, int], Series]] = {
    Finite: finite_series,
    GradientNorm: gradient_norm_series,
    LossSpike: loss_spike_series,
    InitialLoss: initial_loss_series,
    Expression: expression_series,
    NoPlaceholder: no_placeholder_series,
    MetricsPresent: metrics_present_series,
}


def series_of(check: Check[Any], columns: Columns, steps: np.ndarray) -> Series:
    """The invariant's decisions over the rows: vectorised when its kind has a column form
    whose first and last decisions agree with the arrays, else through its Check."""
    n = len(steps)
    batch = BATCH.get(type(check))
    if batch is not None:
        try:
            series = batch(check, columns, n)
        except (Unvectorised, FormulaError):
            series = None
        if series is not None:
            rows = np.flatnonzero(series.evaluated)
            if not len(rows) or (series.agrees(int(rows[0])) and series.agrees(int(rows[-1]))):
                return series
    check.reset()
    return streamed(check, columns, steps, n)
