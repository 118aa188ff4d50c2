"""``contracts audit``'s bulk output is byte for byte the row-by-row replay's (issue 12).

The bulk replay builds its ``summary`` events' JSON from arrays and writes the summaries
between two failing rows in one chained write (``EvidenceLog.write_bodies``); it writes
``metrics.parquet`` with its own encodings, and hashes the log from the bytes it read.
With the events' clock held still, the evidence log of a bulk audit must be the very file
the row-by-row audit writes (every line, every hash in the chain), the verdict the same
(its recorded chain head too), the metrics, audit.json and a resumed run's restored
metrics the same, and ``contracts check`` must say the same of both run dirs (and find no
broken chain). The CSV reading and the loss-spike window sums it now takes are pinned too.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import check

from traingate.checks.decision import Decision
from traingate.ci.audit import audit_metrics, batch, bulk, columns
from traingate.ci.audit.batch import Series, window_sums
from traingate.contract.regime import FromScratch
from traingate.runtime import evidence
from traingate.runtime.binding import Tracked
from traingate.runtime.evidence import EVIDENCE, EvidenceLog, MetricsBuffer, read_chained

VOCAB = 50257
COLUMNS = ("step", "loss", "grad_norm", "lr", "tokens_per_sec")
ROWS = 1_050  # ten summaries and a half


def step_log(folder: Path, fmt: str, *, warn_at: int | None, abort_at: int | None) -> Path:
    """A decaying noisy step log; ``warn_at``: throughput negative there (INV-TRAIN-006
    warns), ``abort_at``: loss NaN there (INV-TRAIN-001 aborts)."""
    rng = np.random.default_rng(7)
    step = np.arange(ROWS, dtype=np.int64)
    cols: dict[str, Any] = {
        "step": step,
        "loss": 2.0 + (math.log(VOCAB) - 2.0) * np.exp(-step / 300) + rng.normal(0, 0.05, ROWS),
        "grad_norm": np.abs(rng.normal(1.0, 0.3, ROWS)) + 0.01,
        "lr": 3e-4 * np.minimum(1.0, (step + 1) / 200),
        "tokens_per_sec": rng.normal(25_000, 800, ROWS),
    }
    if warn_at is not None:
        cols["tokens_per_sec"][warn_at] = -1.0
    if abort_at is not None:
        cols["loss"][abort_at] = math.nan
    path = folder / f"steps.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(cols), path)
    else:
        lines = [",".join(COLUMNS)]
        lines += [",".join(repr(cols[c][i].item()) for c in COLUMNS) for i in range(ROWS)]
        path.write_text("\n".join(lines) + "\n")
    return path


def audit(log: Path, out: Path) -> None:
    audit_metrics(
        log,
        None,
        FromScratch(vocab_size=VOCAB),
        {"vocab_size": VOCAB},
        {c: c for c in COLUMNS},
        out,
    )


@pytest.fixture
def still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every evidence event's ``time`` the same, so two logs can be compared byte for byte."""
    monkeypatch.setattr(evidence, "time", SimpleNamespace(time=lambda: 1_796_000_000.1234))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    "warn_at, abort_at",
    [
        (None, None),  # a clean log: summaries only
        (300, 950),  # a warning on a summary row (its summary follows it), an abort later
        (301, 500),  # a warning, then an abort on a summary row (no summary after it)
    ],
)
def test_a_bulk_audit_writes_the_row_by_row_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    still_clock: None,
    fmt: str,
    warn_at: int | None,
    abort_at: int | None,
) -> None:
    log = step_log(tmp_path, fmt, warn_at=warn_at, abort_at=abort_at)
    taken: list[bool] = []
    in_bulk = bulk.batch_replay
    monkeypatch.setattr(bulk, "batch_replay", lambda g, c: taken.append(True) or in_bulk(g, c))
    audit(log, tmp_path / "bulk")
    assert taken == [True]
    monkeypatch.setattr(columns, "step_columns", lambda *a, **k: None)
    audit(log, tmp_path / "rows")
    fast, slow = tmp_path / "bulk", tmp_path / "rows"

    lines = (fast / EVIDENCE).read_bytes()
    assert lines == (slow / EVIDENCE).read_bytes()
    # one every 100 steps, up to the end of the log or before the aborting row
    assert lines.count(b'"event": "summary"') == ((abort_at or ROWS) + 99) // 100
    chained = read_chained(fast / EVIDENCE)
    assert chained.broken == [] and not chained.torn
    verdict = json.loads((fast / "verdict.json").read_text())
    assert verdict == json.loads((slow / "verdict.json").read_text())
    assert verdict["evidence_head"] == chained.head
    assert (fast / "audit.json").read_text() == (slow / "audit.json").read_text()

    a, b = pq.read_table(fast / "metrics.parquet"), pq.read_table(slow / "metrics.parquet")
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert [repr(r) for r in a.to_pylist()] == [repr(r) for r in b.to_pylist()]  # NaN too
    rows = a.num_rows - 3  # what a checkpoint before the last rows recorded
    mine, theirs = (MetricsBuffer.read(d, rows) for d in (fast, slow))
    assert (mine.point, mine.step, mine.name) == (theirs.point, theirs.step, theirs.name)
    assert [repr(v) for v in mine.value] == [repr(v) for v in theirs.value]

    checked = [CliRunner().invoke(check, [str(d)]) for d in (fast, slow)]
    said = [c.output.replace(str(d), "RUN") for c, d in zip(checked, (fast, slow), strict=True)]
    assert said[0] == said[1] and checked[0].exit_code == checked[1].exit_code == 1
    # INV-TRAIN-005 (ship-blocking) needs validations the log has none of: that alone fails
    assert "FAIL: INV-TRAIN-005: never evaluated" in said[0] and "chain" not in said[0]
    assert ("FAIL: INV-TRAIN-001" in said[0]) == (abort_at is not None)


def test_bodies_written_together_chain_as_one_by_one(tmp_path: Path, still_clock: None) -> None:
    one, many = EvidenceLog(tmp_path / "one"), EvidenceLog(tmp_path / "many")
    fields = [{"step": s, "tallies": {"INV-X-001": {"status": "pass"}}} for s in range(5)]
    for f in fields:
        one.write("summary", **f)
    many.write_bodies(json.dumps({"event": "summary", "time": evidence.now(), **f}) for f in fields)
    many.write_bodies([])  # nothing: no line, the chain's head unchanged
    for log in (one, many):
        log.close()
    assert one.head == many.head != evidence.GENESIS
    assert (tmp_path / "one" / EVIDENCE).read_bytes() == (tmp_path / "many" / EVIDENCE).read_bytes()


def test_a_csv_spelling_nan_and_inf_is_typed_in_bulk_as_float_reads_it(tmp_path: Path) -> None:
    # arrow reads the decimals; the columns where it read a NaN or inf are re-read as text
    cells = ["0,nan,1", "1, -inf ,2.5", "2,1e-3,Infinity", "3,NaN,", "4,+INF,-0", "5,1e400,2"]
    log = tmp_path / "s.csv"
    log.write_text("\n".join(["step,loss,grad_norm", *cells]) + "\n")
    cols = columns.step_columns(log, None, {c: c for c in COLUMNS[:3]}, {}, "auto")
    assert cols is not None
    for k, name in enumerate(("loss", "grad_norm"), 1):
        spelled = [c.split(",")[k].strip() for c in cells]
        assert [repr(float(v)) for v in cols.values[name]] == [
            repr(float(s)) if s else "nan" for s in spelled
        ]
        assert cols.filled[name].tolist() == [bool(s) for s in spelled]


def ring_sums(pushed: list[float], window: int) -> list[float]:
    """``loss_spike``'s running sum after each number of pushes, kept as its ring buffer
    keeps it: ``sum()`` of the window every ``window`` pushes, else − oldest + newest."""
    sums, running = [math.nan] * (len(pushed) + 1), math.nan
    for k in range(window, len(pushed) + 1):
        if k % window == 0:
            running = sum(pushed[k - window : k])
        else:
            running = running - pushed[k - window - 1] + pushed[k - 1]
        sums[k] = running
    return sums


@pytest.mark.parametrize(
    "n, window",
    [(1, 1), (5, 7), (7, 7), (8, 7), (100, 3), (50, 10), (1_001, 100), (20_000, 100)],
)
def test_window_sums_are_the_ring_buffers_to_the_bit(n: int, window: int) -> None:
    """Fewer blocks of pushes than pushes in one (summed along each block) or not (all
    blocks at once, a push at a time): the very sums the ring buffer keeps."""
    rng = np.random.default_rng(n)  # magnitudes 1e-3 … 1e3 apart: every rounding shows
    pushed = (rng.normal(0, 1, n) * rng.choice([1e-3, 1.0, 1e3], n)).tolist()
    sums = window_sums(np.array(pushed), window).tolist()
    assert [repr(v) for v in sums] == [repr(v) for v in ring_sums(pushed, window)]


@pytest.mark.parametrize("n, window", [(8, 7), (50, 10), (20_000, 100)])
def test_window_sums_from_sums_own_result_are_the_ring_buffers(
    monkeypatch: pytest.MonkeyPatch, n: int, window: int
) -> None:
    """Where ``sum()`` is compensated (Python 3.12 on), each block's re-add is ``sum()``'s
    own result, in either layout: taken so here, whatever the Python, the ring's sums."""
    monkeypatch.setattr(batch, "SEQUENTIAL_SUM", False)
    pushed = np.random.default_rng(window).lognormal(0.0, 3.0, n)  # magnitudes far apart
    expected = ring_sums(pushed.tolist(), window)
    assert [repr(v) for v in window_sums(pushed, window).tolist()] == [repr(v) for v in expected]


class _FailingSha:
    """A sha256 whose hashing fails (as a MemoryError on a worker thread would)."""

    def __init__(self, data: bytes = b"") -> None:
        if data:
            raise RuntimeError("hashing failed")

    def update(self, data: bytes) -> None:
        raise RuntimeError("hashing failed")

    def hexdigest(self) -> str:
        return "0" * 64


def test_the_log_hashed_on_a_worker_thread_raises_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # audit.json's sha256 is never a digest of nothing: the worker's error reaches the caller
    assert (
        columns.hashed(b"step,loss\n0,1.0\n")() == hashlib.sha256(b"step,loss\n0,1.0\n").hexdigest()
    )
    monkeypatch.setattr(columns, "hashlib", SimpleNamespace(sha256=_FailingSha))
    with pytest.raises(RuntimeError, match="hashing failed"):
        columns.hashed(b"step,loss\n0,1.0\n")()


@pytest.mark.parametrize("size", [1, 3, 4, 64])
def test_bulk_metrics_slices_alike_or_not_lay_out_the_guards_rows(
    tmp_path: Path, size: int
) -> None:
    """A slice whose rows all record the same limits is laid out as a grid, any other by
    scattering: both give the rows ``Guard.step`` records, in its order (a limit on every
    row, one that changes at a few rows, one never recorded; slices of ``size`` rows)."""
    n = 10
    loss, grad_norm = np.linspace(3.0, 1.0, n), np.full(n, 0.5)
    loss[6] = math.nan
    dense = np.linspace(5.0, 6.0, n)  # recorded on every row
    sparse = np.where(np.arange(n) < 7, 2.0, 3.0)
    sparse_at = np.isin(np.arange(n), [0, 7])  # recorded where it changed
    plain = MetricsBuffer()
    for i in range(n):
        plain.add("step", 10 * i, None, {"loss": float(loss[i]), "grad_norm": float(grad_norm[i])})
        limits = {"limit/A": float(dense[i])}
        if sparse_at[i]:
            limits["limit/B"] = float(sparse[i])
        plain.add("step", 10 * i, None, limits)
    limits = [
        ("limit/A", np.ones(n, bool), dense),
        ("limit/B", sparse_at, sparse),
        ("limit/C", np.zeros(n, bool), np.full(n, 9.0)),
    ]
    laid = bulk.BulkMetrics(
        [("loss", loss), ("grad_norm", grad_norm)], limits, 10 * np.arange(n), n
    )
    laid.SLICE = size
    for buffer, folder in ((plain, "a"), (laid, "b")):
        (tmp_path / folder).mkdir()
        buffer.write(tmp_path / folder)
    a, b = (pq.read_table(tmp_path / f / "metrics.parquet") for f in ("a", "b"))
    assert len(laid) == len(plain) == 2 * n + n + 2
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert [repr(r) for r in a.to_pylist()] == [repr(r) for r in b.to_pylist()]  # NaN too


def small_bulk() -> tuple[MetricsBuffer, bulk.BulkMetrics]:
    """The same five rows (and a final point after them) as a Guard's buffer and a bulk."""
    loss = np.array([2.0, 1.5, math.nan, 1.25, 1.0])
    plain = MetricsBuffer()
    for i, value in enumerate(loss.tolist()):
        plain.add("step", i, None, {"loss": value})
    laid = bulk.BulkMetrics([("loss", loss)], [], np.arange(5), 5)
    return plain, laid


def rows_of(path: Path) -> list[str]:
    return [repr(r) for r in pq.read_table(path).to_pylist()]


def test_a_metrics_write_begun_early_is_the_one_write_makes(tmp_path: Path) -> None:
    """Begun during the replay, completed by ``write`` with the rows added since: the very
    rows a Guard's buffer writes; a second write (a checkpoint, then close) rewrites it."""
    plain, laid = small_bulk()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    laid.begin(tmp_path / "b")
    for buffer in (plain, laid):
        buffer.add("final", 4, None, {"loss": 1.0})
    expected = rows_of(plain.write(tmp_path / "a"))
    assert rows_of(laid.write(tmp_path / "b")) == expected
    laid.add("final", 4, None, {"loss": 0.5})
    plain.add("final", 4, None, {"loss": 0.5})
    assert rows_of(laid.write(tmp_path / "b")) == rows_of(plain.write(tmp_path / "a"))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["metrics.parquet"]


def test_a_metrics_write_begun_early_and_given_up_leaves_nothing(tmp_path: Path) -> None:
    _, laid = small_bulk()
    laid.begin(tmp_path)
    laid.settle()  # the guard was not closed
    assert list(tmp_path.iterdir()) == []
    laid.settle()  # nothing left to give up


def test_a_metrics_write_begun_for_another_folder_is_given_up(tmp_path: Path) -> None:
    """Written to a folder other than the one the early write began in: that one is given
    up (no file left there), and the file is written where asked, whole."""
    plain, laid = small_bulk()
    laid.begin(tmp_path / "early")
    expected = rows_of(plain.write(tmp_path))
    assert rows_of(laid.write(tmp_path / "asked")) == expected
    assert list((tmp_path / "early").iterdir()) == []


def test_a_metrics_write_begun_early_raises_its_error_from_write(tmp_path: Path) -> None:
    _, laid = small_bulk()
    taken = tmp_path / "run"
    taken.write_text("a file where the run dir should be")
    laid.begin(taken)
    with pytest.raises(OSError):
        laid.write(taken)


def test_metrics_written_through_the_descriptors_name_or_the_file_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's own file on the descriptor's name (Linux), or, where that name cannot be
    opened, the Python file: the same bytes either way."""
    written = []
    for folder in ("native", "python"):
        if folder == "python":
            monkeypatch.setattr(bulk, "FD_PATH", str(tmp_path / "no-such-folder" / "{}"))
        (tmp_path / folder).mkdir()
        _, laid = small_bulk()
        laid.add("final", 4, None, {"loss": 1.0})
        written.append(laid.write(tmp_path / folder).read_bytes())
        assert rows_of(tmp_path / folder / "metrics.parquet")[-1].endswith("'value': 1.0}")
    assert written[0] == written[1]


def test_a_replay_error_is_raised_not_the_given_up_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay fails after metrics.parquet's early write failed too: the replay's error
    is the one raised (the write, given up, leaves no file and no error of its own)."""

    def full_disk(path: Path, write: Any) -> None:
        raise OSError("no space left on device")

    def failed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    log = step_log(tmp_path, "csv", warn_at=None, abort_at=None)
    monkeypatch.setattr(bulk, "atomic_write", full_disk)
    monkeypatch.setattr(bulk, "_events", failed)
    with pytest.raises(KeyboardInterrupt):
        audit(log, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.parquet").exists()


def test_an_error_writing_to_the_python_file_is_not_chained_to_the_failed_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the descriptor's name cannot be opened, an error writing to the Python file
    is raised as itself (not "during handling of" the reopen's FileNotFoundError)."""
    monkeypatch.setattr(bulk, "FD_PATH", str(tmp_path / "no-such-folder" / "{}"))
    with (
        (tmp_path / "file").open("wb") as fh,
        pytest.raises(ValueError) as raised,
        bulk._unlocked(fh) as sink,
    ):
        assert sink is fh
        raise ValueError("the encoder failed")
    assert raised.value.__context__ is None


@pytest.mark.parametrize(
    "excess",
    [
        [1.0, math.nan, 3.0, 2.0],  # a NaN past the first: as −inf
        [math.nan, 5.0, 1.0, 9.0],  # the first NaN: nothing beats it
        [-math.inf, math.nan, -math.inf, math.nan],
        [0.5, 2.0, math.nan, 2.0],  # a later equal excess does not replace the worst
    ],
)
@pytest.mark.parametrize("evaluated", [[1, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]])
def test_the_bulk_tally_keeps_the_worst_and_last_rows_tracked_record_keeps(
    excess: list[float], evaluated: list[int]
) -> None:
    """A NaN excess (a NaN limit) counts as −inf unless it is the first evaluated: the bulk
    tally records the rows ``Tracked.record``, row by row, keeps as worst and as last."""
    n = len(excess)
    decisions = [Decision(True, 0.0, -x, "<=", "") for x in excess]  # excess 0 − limit
    on = np.array(evaluated, bool)
    series = Series(on, np.ones(n, bool), np.array(excess), np.zeros(n), on, decisions.__getitem__)

    def tallied() -> SimpleNamespace:
        return SimpleNamespace(
            evaluations=0, violations=0, worst_excess=-math.inf, _worst=None, _last=None
        )

    bulk_tally, row_by_row = tallied(), tallied()
    bulk_tally.record = lambda d, step, epoch: Tracked.record(bulk_tally, d, step, epoch)
    bulk._tally(bulk_tally, series, np.zeros(n, bool), 10 * np.arange(n))  # type: ignore[arg-type]
    for i in np.flatnonzero(on):
        Tracked.record(row_by_row, decisions[i], 10 * int(i), None)  # type: ignore[arg-type]
    for t in (bulk_tally, row_by_row):
        t.kept = [(e.decision, e.step) for e in (t._worst, t._last)]
    assert bulk_tally.kept == row_by_row.kept
    assert bulk_tally.evaluations == row_by_row.evaluations == int(on.sum())
