"""The bulk replay of a plain step log (:class:`.columns.StepColumns`), for ``contracts audit``.

Each step invariant decides every row at once (:mod:`.batch`); the replay ends at the
first aborting (or early-stopping) row, as the row-by-row :func:`.replay.replay` would,
and leaves the Guard exactly as that one does: each invariant's counts, its worst and last
evaluations (recorded through ``Tracked.record``, decisions built by the kind's own pure
function), the same events in the same order (violations, warnings, the early stop, the
summaries), the same metrics rows (laid out when written, :class:`BulkMetrics`), and
the final point run as the loop would run it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from traingate.ci.audit.batch import Series, series_of
from traingate.ci.audit.columns import StepColumns
from traingate.ci.audit.replay import Replayed, final_point, guarded
from traingate.files import atomic_write
from traingate.runtime.evidence import METRICS, METRICS_OPTIONS, MetricsBuffer, now
from traingate.runtime.guard import Guard, InvariantViolation, Tracked
from traingate.runtime.verdict import invariant_status
from traingate.runtime.violation import ViolationRecord

INDEX = np.int16  # the bulk metrics' dictionary codes: a few dozen names (less memory)
FD_PATH = "/proc/self/fd/{}"  # an open file's name by its descriptor (Linux)


def _first_failure(
    failed: dict[int, np.ndarray], tracked: list[Tracked], action: str, n: int
) -> int:
    """The first row an ``action`` invariant fails on (``n`` if none does)."""
    rows = [n]
    for j, f in failed.items():
        if tracked[j].invariant.on_violation == action:
            first = int(np.argmax(f))
            if f[first]:
                rows.append(first)
    return min(rows)


def batch_replay(guard: Guard, cols: StepColumns) -> Replayed | None:
    """:func:`replay` of a plain step log, decided in bulk (module doc); None, with the
    guard untouched, when it cannot be (a check rejecting a row, listeners, a reference,
    several ranks): then replay it row by row."""
    tracked = guard.by_point["step"]
    if guard.events.listeners or guard.reference is not None or guard.world != 1:
        return None
    keys = {*cols.values, "step"}
    try:
        series = [
            series_of(t.check, cols.values, cols.steps) if keys >= t.needs else None
            for t in tracked
        ]
    except Exception:  # a check rejecting a row: the row-by-row replay reports where
        for t in tracked:
            t.check.reset()
        return None
    n = len(cols.steps)
    # each decided invariant's failing rows (``ok`` is True where it is not evaluated)
    failed = {j: ~s.ok & s.evaluated for j, s in enumerate(series) if s is not None}
    abort_row = _first_failure(failed, tracked, "abort", n)
    stop_row = _first_failure(failed, tracked, "stop", n)
    end = min(abort_row, stop_row, n - 1)
    m = end + 1
    steps = cols.steps
    failing = {j: f[:m] for j, f in failed.items()}
    guard.metrics = _bulk_metrics(tracked, series, cols, m)
    if guard.evidence and guard.run_dir is not None:  # what Guard.close writes it for
        guard.metrics.begin(guard.run_dir)
    for j, f in failing.items():
        _tally(tracked[j], series[j], f, steps)  # type: ignore[arg-type]
    decided = Decided(guard, tracked, series, failing, steps)
    first_abort = _events(decided, m, aborted=abort_row <= end)
    guard.last_step = int(steps[end])
    done = Replayed(replayed=m - 1, current=cols.row(end))
    if first_abort is not None:
        guard.aborted_by = first_abort

        def stop() -> None:
            raise InvariantViolation(first_abort)

        return guarded(guard, done, stop)
    done.replayed = m
    if stop_row <= end:
        done.early_stop = {
            "row": int(cols.numbers[end]),
            "line": cols.row(end).line,
            **(guard.early_stop or {}),
        }
    return guarded(guard, done, lambda: final_point(guard, done, cols.scalars(end)))


def _tally(t: Tracked, s: Series, failing: np.ndarray, steps: np.ndarray) -> None:
    """``t``'s counts over the rows ``failing`` covers (the first m: it is True where ``t``
    fails); its worst and last evaluations recorded through ``Tracked.record`` (the worst
    first: a later equal excess does not replace it)."""
    m = len(failing)
    evaluated = s.evaluated[:m]
    first = _from_first(evaluated)
    rows = None if first is not None else np.flatnonzero(evaluated)
    if rows is not None and not len(rows):
        return
    e = s.excess[first:m] if rows is None else s.excess[rows]
    # a NaN excess counts as -inf, unless it is the first; argmax stops at the first NaN,
    # so a NaN it returns (past the first row) says to look again without the NaNs
    k = int(np.argmax(e))
    if k and math.isnan(e[k]):
        k = int(np.argmax(np.where(np.isnan(e), -np.inf, e)))
    worst, last = (first + k, m - 1) if rows is None else (int(rows[k]), int(rows[-1]))
    t.record(s.decision(worst), int(steps[worst]), None)
    if last != worst:
        t.record(s.decision(last), int(steps[last]), None)
    t.evaluations = len(e)
    t.violations = int(np.count_nonzero(failing))


def _from_first(flags: np.ndarray) -> int | None:
    """The first row ``flags`` sets, when it sets every row from there on (a check that
    judges every row once warmed up: its rows a slice, not an index); else None. (A bulk
    replay's rows are never none: an empty log is replayed row by row.)"""
    first = int(np.argmax(flags))
    return first if flags[first] and flags[first:].all() else None


class Decided(NamedTuple):
    """What the bulk replay decided: the Guard, its step invariants, each one's decisions
    over every row (None: not decided there), each decided one's failing rows of the first
    m, and the rows' steps."""

    guard: Guard
    tracked: list[Tracked]
    series: list[Series | None]
    failing: dict[int, np.ndarray]
    steps: np.ndarray


def _events(decided: Decided, m: int, *, aborted: bool) -> ViolationRecord | None:
    """Each failed decision's events (``failing``: each decided invariant's failing rows of
    the first m), row by row in order with the summaries between, as the row-by-row replay
    writes them (the summaries between two failing rows in one write); the first abort of
    the last row, if it aborts."""
    guard, tracked, series, failing, steps = decided
    every = guard.summary_every
    summary = np.zeros(m, bool)
    if every:
        summary = np.mod(steps[:m], every) == 0
        summary[m - 1] &= not aborted
    at = np.flatnonzero(summary)
    tails = _summary_tails(decided, at)
    evidence = guard.events.evidence

    def summaries(upto: int) -> None:  # the summaries not written yet of rows before `upto`
        nonlocal written
        if evidence is not None and upto > written:
            head = f'{{"event": "summary", "time": {now()!r}'
            evidence.write_bodies(head + tail for tail in tails[written:upto])
        written = upto

    written, first_abort = 0, None
    for r in np.flatnonzero(np.logical_or.reduce([np.zeros(m, bool), *failing.values()])).tolist():
        summaries(int(np.searchsorted(at, r)))  # a row's summary follows its failures
        for j, f in failing.items():
            if f[r]:
                t, step = tracked[j], int(steps[r])
                record = t.violation(series[j].decision(r), "step", step, None, guard.rank)
                guard.tell_failure(record)
                if record.on_violation == "abort" and first_abort is None:
                    first_abort = record
    summaries(len(at))
    return first_abort if aborted else None


def _summary_tails(decided: Decided, at: np.ndarray) -> list[str]:
    """The JSON text that ``EvidenceLog.write`` makes of the ``summary`` event of each row in
    ``at`` (``guard._tallies()`` there: each invariant's status and counts as of that row,
    its own included), from its ``"step"`` on: built from the counts' arrays, with the
    encoder's separators and string escapes, instead of through a dict per event. The
    summaries whose statuses and violation counts are all alike share one %-template."""
    guard, tracked, series, failing, steps = decided
    specs: dict[str, str | _Counts] = {}  # invariant id → its tally's text, or its counts
    for t in guard.tracked:
        j = next((j for j, u in enumerate(tracked) if u is t), None)
        # the status by the verdict's own rule, for each of the three cases it tells apart
        action = t.invariant.on_violation
        cases = [invariant_status(e, v, action) for e, v in ((0, 0), (1, 0), (1, 1))]
        head = f"{json.dumps(t.invariant.id)}: {{".replace("%", "%%")
        status = [f'{head}"status": {json.dumps(c)}, "evaluations": ' for c in cases]
        if j not in failing:  # never evaluated by a step row
            specs[t.invariant.id] = f'{status[0]}0, "violations": 0}}'
            continue
        evaluations, violations = (
            _counts_at(series[j].evaluated[: len(failing[j])], at),
            _counts_at(failing[j], at),
        )
        case = np.where(evaluations == 0, 0, np.where(violations > 0, 2, 1))
        specs[t.invariant.id] = _Counts(status, (violations * 3 + case).tolist(), evaluations)
    counted = [c for c in specs.values() if isinstance(c, _Counts)]
    templates: dict[tuple[int, ...], str] = {}

    def template(key: tuple[int, ...]) -> str:  # key: each counted one's violations·3 + case
        codes = iter(key)
        tallies = []
        for spec in specs.values():
            if isinstance(spec, str):
                tallies.append(spec)
            else:
                violations, case = divmod(next(codes), 3)
                tallies.append(f'{spec.status[case]}%d, "violations": {violations}}}')
        return f', "step": %d, "tallies": {{{", ".join(tallies)}}}}}'

    keys = zip(*(c.codes for c in counted), strict=True) if counted else repeat((), len(at))
    args = zip(steps[at].tolist(), *(c.evaluations.tolist() for c in counted), strict=True)
    tails = []
    for key, values in zip(keys, args, strict=True):
        text = templates.get(key)
        if text is None:
            text = templates[key] = template(key)
        tails.append(text % values)
    return tails


def _counts_at(flags: np.ndarray, at: np.ndarray) -> np.ndarray:
    """How many of ``flags`` are set up to each row of ``at``, that row included."""
    if not flags.any():
        return np.zeros(len(at), np.int64)
    if flags.all():
        return at + 1
    return np.searchsorted(np.flatnonzero(flags), at, "right")


@dataclass
class _Counts:
    """An invariant's tally texts up to its evaluation count (by case: not evaluated,
    passing, failed), and at each summary its case code and evaluation count."""

    status: list[str]
    codes: list[int]
    evaluations: np.ndarray


def _bulk_metrics(
    tracked: list[Tracked], series: list[Series | None], cols: StepColumns, m: int
) -> BulkMetrics:
    """The first ``m`` rows' metrics as ``Guard.step`` records them: each row's values
    (loss, grad_norm, then the rest in mapping order), then each invariant's limit where it
    changed from the last one recorded (in invariant order)."""
    names = [o for o in ("loss", "grad_norm") if o in cols.values]
    names += [o for o in cols.values if o not in names]
    values = [(o, cols.values[o]) for o in names]
    limits = []
    for t, s in zip(tracked, series, strict=True):
        if s is not None:
            mask = np.zeros(m, bool)
            first = _from_first(s.has_limit[:m])
            if first is not None:  # the common case: no index, no copy
                kept = s.limit[first:m]
                mask[first] = True
                np.not_equal(kept[1:], kept[:-1], out=mask[first + 1 :])  # NaN != NaN: changed
            else:
                rows = np.flatnonzero(s.has_limit[:m])
                kept = s.limit[rows]
                changed = np.concatenate([[True], ~(kept[1:] == kept[:-1])])
                mask[rows[changed] if len(rows) else rows] = True
            limits.append((f"limit/{t.invariant.id}", mask, s.limit))
    return BulkMetrics(values, limits, cols.steps, m)


class BulkMetrics(MetricsBuffer):
    """A Guard's metrics whose bulk a batch replay laid out: per row, each value column,
    then each limit where its mask is set; what later points add follows, one by one. The
    bulk's rows are built only when written, a slice at a time (little memory to touch);
    the batch replay begins that write as soon as the bulk is known (:meth:`begin`)."""

    SLICE = 1 << 16  # rows of the log per row group

    def __init__(
        self,
        values: list[tuple[str, np.ndarray]],
        limits: list[tuple[str, np.ndarray, np.ndarray]],
        steps: np.ndarray,
        m: int,
    ) -> None:
        super().__init__()
        self.values, self.limits, self.steps, self.m = values, limits, steps, m
        self.rows = m * len(values) + sum(np.count_nonzero(mask) for _, mask, _ in limits)
        self._early: _EarlyWrite | None = None

    def __len__(self) -> int:
        return self.rows + len(self.value)

    def slices(self) -> Iterator[Any]:
        """The bulk's rows as arrow tables of :data:`SLICE` log rows each, in order."""
        import pyarrow as pa

        labels = pa.array([n for n, _ in self.values] + [n for n, _, _ in self.limits])
        for a in range(0, self.m, self.SLICE):
            b = min(a + self.SLICE, self.m)
            masks = [mask[a:b] for _, mask, _ in self.limits]
            dense = [bool(here.all()) for here in masks]
            if all(d or not here.any() for d, here in zip(dense, masks, strict=True)):
                steps, value, name = self._regular(a, b, dense)
            else:
                steps, value, name = self._scattered(a, b, masks)
            total = len(value)
            yield pa.table(
                {
                    "point": pa.DictionaryArray.from_arrays(np.zeros(total, INDEX), ["step"]),
                    "step": pa.array(steps, pa.int64()),
                    "epoch": pa.nulls(total, pa.int64()),
                    "name": pa.DictionaryArray.from_arrays(name, labels),
                    "value": pa.array(value, pa.float64()),
                }
            )

    def _regular(self, a: int, b: int, dense: list[bool]) -> tuple[np.ndarray, ...]:
        """Rows ``a`` to ``b`` when each limit is recorded on all of them or on none (the
        common slice: every row alike): one row of a grid per log row, filled a column at
        a time, and the names one pattern repeated."""
        width = len(self.values)
        kept = [k for k, d in enumerate(dense, width) if d]
        columns = [c for _, c in self.values] + [self.limits[k - width][2] for k in kept]
        grid = np.empty((b - a, len(columns)))
        for k, column in enumerate(columns):
            grid[:, k] = column[a:b]
        name = np.tile(np.array([*range(width), *kept], INDEX), b - a)
        return np.repeat(self.steps[a:b], len(columns)), grid.reshape(-1), name

    def _scattered(self, a: int, b: int, masks: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Rows ``a`` to ``b`` in general: each log row's slots counted, then each column
        scattered to its rows' next free slot."""
        width = len(self.values)
        per_row = np.full(b - a, width, np.int64)
        for here in masks:
            per_row += here
        at = np.cumsum(per_row) - per_row  # each row's first slot, then the next free
        total = int(per_row[-1] + at[-1])
        value, name = np.empty(total), np.empty(total, INDEX)
        for k, (_, column) in enumerate(self.values):
            value[at], name[at] = column[a:b], k
            at += 1
        for k, ((_, _, limit), here) in enumerate(zip(self.limits, masks, strict=True), width):
            value[at[here]], name[at[here]] = limit[a:b][here], k
            at += here
        return np.repeat(self.steps[a:b], per_row), value, name

    def begin(self, run_dir: Path) -> None:
        """Start writing ``metrics.parquet`` in ``run_dir`` now, on a worker thread: the bulk
        is encoded while the replay goes on (its events, its tallies, the verdict), and
        :meth:`write` only adds the later rows and completes the file (:class:`_EarlyWrite`)."""
        self._early = _EarlyWrite(self, run_dir)

    def settle(self) -> None:
        """Give up a write :meth:`begin` began that :meth:`write` did not complete (the guard
        was not closed): its temp file is removed, no ``metrics.parquet`` is made, and an
        error the write met goes with it (not raised over the error that stopped the run)."""
        early, self._early = self._early, None
        if early is not None:
            early.finish(None)

    def write(self, run_dir: Any) -> Any:
        """``metrics.parquet``: the bulk, then the later rows; read back, the same columns
        and types as :meth:`MetricsBuffer.write` writes (no arrow schema is stored, so the
        dictionary encoding is the file's own)."""
        import pyarrow as pa

        columns = ("point", "step", "epoch", "name", "value")
        tail = pa.table({c: getattr(self, c) for c in columns}, schema=_schema())
        path = run_dir / METRICS
        early, self._early = self._early, None
        if early is not None and early.run_dir == run_dir:
            early.finish(tail)
            return path
        if early is not None:
            early.finish(None)
        atomic_write(path, lambda fh: self.encode(fh, lambda: tail))
        return path

    def encode(self, fh: Any, later: Callable[[], Any]) -> None:
        """Write the parquet file to ``fh``: the bulk, then ``later()``'s table of the later
        rows (raises :class:`_GivenUp` when that is None)."""
        import pyarrow.parquet as pq

        def encoded(table: Any) -> None:
            writer.write_table(table)
            _start_writeback(fh)

        with _unlocked(fh) as sink, pq.ParquetWriter(sink, _schema(), **METRICS_OPTIONS) as writer:
            # each slice is encoded on a worker thread (pyarrow lets go of the GIL) while
            # the next one is laid out; at most two slices are held at a time
            with ThreadPoolExecutor(1, thread_name_prefix="traingate-metrics") as pool:
                encoding: deque[Future[None]] = deque()
                for table in self.slices():
                    encoding.append(pool.submit(encoded, table))
                    if len(encoding) > 1:
                        encoding.popleft().result()
                for done in encoding:
                    done.result()
            tail = later()
            if tail is None:
                raise _GivenUp
            if tail.num_rows or not self.m:
                writer.write_table(tail)


def _schema() -> Any:
    """The bulk's arrow schema: :meth:`MetricsBuffer.write`'s columns and types, with the
    point and the name dictionary-coded (:data:`INDEX` codes)."""
    import pyarrow as pa

    coded = pa.dictionary(pa.from_numpy_dtype(INDEX), pa.string())
    types = {"point": coded, "step": pa.int64(), "epoch": pa.int64(), "name": coded}
    return pa.schema([*types.items(), ("value", pa.float64())])


def _unlocked(fh: Any) -> AbstractContextManager[Any]:
    """``fh``'s file as pyarrow's own file, which writes without taking the interpreter
    lock (pyarrow takes it for each write to a Python file: an encoder beside a busy main
    thread waits for it at every page), opened by the name the OS gives the open file
    (:data:`FD_PATH`); ``fh`` itself where that cannot be opened."""
    import pyarrow as pa

    fh.flush()
    try:
        return pa.OSFile(FD_PATH.format(fh.fileno()), "ab")
    except OSError:
        return nullcontext(fh)


class _GivenUp(Exception):
    """A write begun early was given up: ``atomic_write`` removes its temp file."""


class _EarlyWrite:
    """``metrics.parquet`` written by ``atomic_write`` on a daemon thread (one that never
    holds the interpreter's exit): the bulk at once, then the later rows once
    :meth:`finish` hands them over (None: given up, no file); its error is raised there,
    unless the write was given up."""

    def __init__(self, metrics: BulkMetrics, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.later: Future[Any] = Future()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(metrics,), name="traingate-metrics-early", daemon=True
        )
        self.thread.start()

    def _run(self, metrics: BulkMetrics) -> None:
        try:
            atomic_write(self.run_dir / METRICS, lambda fh: metrics.encode(fh, self.later.result))
        except _GivenUp:
            pass
        except BaseException as exc:  # raised by finish(), in the thread that closes the guard
            self.error = exc

    def finish(self, tail: Any) -> None:
        """Hand over the later rows and wait for the file (None: give the write up, and
        wait for it to end)."""
        self.later.set_result(tail)
        self.thread.join()
        if self.error is not None and tail is not None:
            raise self.error


def _start_writeback(fh: Any) -> None:
    """Hand what is written of ``fh`` so far to the disk now (Linux starts writing back a
    file's dirty pages on ``POSIX_FADV_DONTNEED``), so the disk writes while the next
    slices are encoded and ``atomic_write``'s closing fsync, which still makes the file
    durable, waits only for the last ones; the pages written back leave the cache."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        fh.flush()
        advise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
