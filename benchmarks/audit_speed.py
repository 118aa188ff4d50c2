"""How fast ``contracts audit`` replays a long step log (issue 12): audit / a numpy pass.

Writes a step log of ``--rows`` rows (default 1,000,000: step, loss, grad_norm, lr,
tokens_per_sec; a decaying noisy loss from ln(vocab), noisy norms and throughput, so no
invariant fires) as CSV and parquet in a temporary folder, plus a ``late`` variant whose
throughput goes negative at 80 % of the log (INV-TRAIN-006 warns) and whose loss is NaN at
95 % (INV-TRAIN-001 aborts there). Each round times, interleaved, per log:

* ``audit``: :func:`traingate.ci.audit.audit_metrics` (the function ``contracts audit``
  calls) with the pretrain preset, from scratch, into a fresh run dir; its time split into
  reading the log, typing rows, deciding (the replay) and writing evidence/metrics (close;
  a bulk replay's ``metrics.parquet`` is encoded on a worker thread from the middle of the
  replay on, so "write" is what close waits for of it, beside the verdict and the fsyncs);
* ``numpy``: pyarrow reads the same columns into numpy arrays, then a vectorised pass
  computes the same step checks (finite, gradient-norm streak, loss-spike window, initial
  loss, throughput expression, no-placeholder streak, metrics present) and their first
  violating rows.

With ``--baseline SRC`` (the ``src`` folder of another checkout, e.g. ``git archive HEAD
src | tar -x -C /tmp/base``), each round also times that code's audit of each log, in a
fresh process after warm-up audits (one of the same log), between this code's audit and
the numpy pass: a before/after comparison under the same load.

Prints the machine and load first, medians per log and phase, and the headline ratio
(median audit / median numpy over the logs) last::

    .venv/bin/python benchmarks/audit_speed.py --rows 1000000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from traingate.ci.audit import audit_metrics
from traingate.ci.audit import auditlog as auditlog_module
from traingate.ci.audit import bulk as bulk_module
from traingate.ci.audit import columns as columns_module
from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard

VOCAB = 50257
COLUMNS = ("step", "loss", "grad_norm", "lr", "tokens_per_sec")
MAPPING = {c: c for c in COLUMNS}
# phase → the functions it covers, by module: reading the log (in bulk, ``step_columns``,
# which types it too), typing rows one by one, deciding (the replay, events included);
# Guard.close then writes the verdict and metrics.parquet ("write")
PHASES = {
    "read": ((auditlog_module, "read_table"), (columns_module, "step_columns")),
    "type": ((auditlog_module, "build_rows"), (auditlog_module, "index_validations")),
    "decide": ((auditlog_module, "replay"), (bulk_module, "batch_replay")),
}


def step_log(rows: int, late: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """A realistic step log's columns; ``late``: a warning at 80 %, an abort at 95 %."""
    rng = np.random.default_rng(seed)
    step = np.arange(rows, dtype=np.int64)
    loss = 2.0 + (math.log(VOCAB) - 2.0) * np.exp(-step / (rows / 20)) + rng.normal(0, 0.05, rows)
    grad_norm = np.abs(rng.normal(1.0, 0.3, rows)) + 0.01
    warm = np.minimum(1.0, (step + 1) / 2000)
    lr = 3e-4 * warm * (0.55 + 0.45 * np.cos(np.pi * step / rows))
    tokens = rng.normal(25_000, 800, rows)
    if late:
        tokens[int(rows * 0.8)] = -1.0
        loss[int(rows * 0.95)] = np.nan
    return {"step": step, "loss": loss, "grad_norm": grad_norm, "lr": lr, "tokens_per_sec": tokens}


def write_logs(folder: Path, rows: int) -> dict[str, Path]:
    """``clean``/``late`` × CSV/parquet logs in ``folder``, by name."""
    logs = {}
    for variant in ("clean", "late"):
        table = pa.table(step_log(rows, variant == "late"))
        logs[f"{variant}.csv"] = path = folder / f"{variant}.csv"
        pacsv.write_csv(table, path)
        logs[f"{variant}.parquet"] = path = folder / f"{variant}.parquet"
        pq.write_table(table, path)
    return logs


@contextmanager
def phase_timers(into: dict[str, float]) -> Iterator[None]:
    """Time the audit's phases: wrap the functions of :data:`PHASES` (and Guard.close)."""
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                into[phase] = into.get(phase, 0.0) + time.perf_counter() - start

        saved.append((owner, name, original))
        setattr(owner, name, timed)

    for phase, functions in PHASES.items():
        for owner, name in functions:
            wrap(owner, name, phase)
    wrap(Guard, "close", "write")
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def run_audit(log: Path, out: Path) -> tuple[float, dict[str, float], dict[str, Any]]:
    """One audit of ``log`` into ``out``: seconds, seconds per phase, the verdict's tallies."""
    phases: dict[str, float] = {}
    with phase_timers(phases):
        start = time.perf_counter()
        audited = audit_metrics(
            log, None, FromScratch(vocab_size=VOCAB), {"vocab_size": VOCAB}, MAPPING, out
        )
        total = time.perf_counter() - start
    phases["other"] = total - sum(phases.values())
    tallies = {
        i: (r.status, r.evaluations, r.violations) for i, r in audited.verdict.invariants.items()
    }
    return total, phases, tallies


def run_baseline(src: Path, log: Path, out: Path) -> tuple[float, dict[str, float]]:
    """One audit of ``log`` by the code in ``src``, in a fresh process (after a warm-up)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    if not (src.parent / "contracts").is_dir():  # an exported src: the contracts here
        env.setdefault("TRAINGATE_SHIPPED_ROOT", str(Path(__file__).resolve().parents[1]))
    command = [sys.executable, __file__, "--time-one", str(log), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:  # say why, rather than only that it exited non-zero
        raise SystemExit(f"the baseline audit of {log.name} failed:\n{done.stderr}")
    timed = json.loads(done.stdout.strip().splitlines()[-1])
    return timed["total"], timed["phases"]


def warm_up(folder: Path) -> None:
    """One audit of a small CSV and parquet log each: the imports and first calls done."""
    folder.mkdir()
    table = pa.table(step_log(1000, late=False))
    pacsv.write_csv(table, folder / "small.csv")
    pq.write_table(table, folder / "small.parquet")
    for suffix in ("csv", "parquet"):
        run_audit(folder / f"small.{suffix}", folder / f"run-{suffix}")
    shutil.rmtree(folder)


def time_one(log: Path, out: Path) -> None:
    """``--time-one``: warm up (an audit of the log itself included: a fresh process's
    first touch of that much memory is slower), then print one audit's times as JSON."""
    warm_up(out.parent / f"{out.name}-warm")
    run_audit(log, out.parent / f"{out.name}-first")
    shutil.rmtree(out.parent / f"{out.name}-first")
    total, phases, _ = run_audit(log, out)
    print(json.dumps({"total": total, "phases": phases}))


def read_numpy(log: Path) -> dict[str, np.ndarray]:
    """The log's columns as float64 numpy arrays (empty cells NaN), read by pyarrow."""
    table = pq.read_table(log) if log.suffix == ".parquet" else pacsv.read_csv(log)
    return {c: table.column(c).to_numpy().astype(np.float64) for c in COLUMNS}


def run_lengths(flag: np.ndarray) -> np.ndarray:
    """At each row, how many consecutive rows up to it have ``flag`` set."""
    index = np.arange(len(flag))
    last_clear = np.maximum.accumulate(np.where(flag, -1, index))
    return index - last_clear


def first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def numpy_checks(c: dict[str, np.ndarray]) -> dict[str, int | None]:
    """The pretrain preset's step checks, vectorised: each one's first violating row."""
    loss, norm, tokens = c["loss"], c["grad_norm"], c["tokens_per_sec"]
    finite_loss, finite_norm = np.isfinite(loss), np.isfinite(norm)
    out_of_range = ~finite_norm | (norm > 100.0) | (norm < 1e-3)
    kept = loss[finite_loss]  # the spike window holds the finite losses before each row
    sums = np.concatenate([[0.0], np.cumsum(kept)])
    before = np.cumsum(finite_loss) - finite_loss  # finite losses before each row
    start = np.maximum(before - 100, 0)
    mean = (sums[before] - sums[start]) / np.maximum(before - start, 1)
    judged = before >= 100
    spike = judged & (~finite_loss | (loss >= 2.0 * mean))
    ln_v = math.log(VOCAB)
    repeat_loss = np.concatenate([[False], loss[1:] == loss[:-1]])
    repeat_norm = np.concatenate([[False], norm[1:] == norm[:-1]])
    return {
        "finite": first(~finite_loss | ~finite_norm),
        "gradient_norm": first(run_lengths(out_of_range) >= 5),
        "loss_spike": first(judged & (run_lengths(spike) > 4)),
        "initial_loss": None if abs(loss[0] - ln_v) <= 0.5 * ln_v else 0,
        "expression": first(~(tokens >= 0)),
        "no_placeholder": first(
            (run_lengths(repeat_loss) + 1 >= 5) | (run_lengths(repeat_norm) + 1 >= 5)
        ),
        "metrics_present": first(~finite_loss | ~finite_norm),
    }


def run_numpy(log: Path) -> tuple[float, dict[str, float], dict[str, int | None]]:
    start = time.perf_counter()
    columns = read_numpy(log)
    read = time.perf_counter() - start
    found = numpy_checks(columns)
    total = time.perf_counter() - start
    return total, {"read": read, "decide": total - read}, found


def median_phases(samples: list[dict[str, float]]) -> str:
    names = sorted({k for s in samples for k in s}, key=[*PHASES, "write", "other"].index)
    return ", ".join(f"{n} {statistics.median(s.get(n, 0.0) for s in samples):.3f}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--logs", default="clean.csv,clean.parquet,late.csv,late.parquet")
    parser.add_argument("--baseline", type=Path, help="another checkout's src: time it too")
    parser.add_argument("--time-one", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("traingate").setLevel(logging.ERROR)  # the late log's warnings
    if args.time_one:
        return time_one(*args.time_one)
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} cores")
    print(f"load average before: {os.getloadavg()}")
    names = args.logs.split(",")
    audits: dict[str, list[tuple[float, dict[str, float]]]] = {n: [] for n in names}
    numpys: dict[str, list[tuple[float, dict[str, float]]]] = {n: [] for n in names}
    baselines: dict[str, list[tuple[float, dict[str, float]]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        logs = write_logs(folder, args.rows)
        print(
            f"{args.rows:,} rows; log sizes: "
            + ", ".join(f"{n} {logs[n].stat().st_size / 1e6:.1f} MB" for n in names)
        )
        warm_up(folder / "warm")
        for r in range(args.rounds):
            for name in names:
                out = folder / f"run-{r}-{name}"
                total, phases, tallies = run_audit(logs[name], out)
                shutil.rmtree(out)
                audits[name].append((total, phases))
                if args.baseline is not None:
                    base = folder / f"base-{r}-{name}"
                    baselines[name].append(run_baseline(args.baseline, logs[name], base))
                    shutil.rmtree(base)
                n_total, n_phases, found = run_numpy(logs[name])
                numpys[name].append((n_total, n_phases))
                if r == 0:
                    fired = {i: t for i, t in tallies.items() if t[2]}
                    print(
                        f"  {name}: audit violations {fired or 'none'}; numpy first rows "
                        f"{ {k: v for k, v in found.items() if v is not None} or 'none' }"
                    )
                before = f", baseline {baselines[name][-1][0]:.3f} s" if args.baseline else ""
                print(f"  round {r} {name}: audit {total:.3f} s{before}, numpy {n_total:.3f} s")
    ratios = []
    for name in names:
        a = statistics.median(t for t, _ in audits[name])
        n = statistics.median(t for t, _ in numpys[name])
        ratios.append(a / n)
        print(
            f"{name}: audit median {a:.3f} s ({median_phases([p for _, p in audits[name]])}); "
            f"numpy median {n:.3f} s ({median_phases([p for _, p in numpys[name]])}); "
            f"ratio {a / n:.1f}x"
        )
        if args.baseline is not None:
            b = statistics.median(t for t, _ in baselines[name])
            print(
                f"  baseline median {b:.3f} s ({median_phases([p for _, p in baselines[name]])}); "
                f"ratio {b / n:.1f}x; this code / baseline {a / b:.2f}"
            )
    print(f"load average after: {os.getloadavg()}")
    print(
        f"audit / numpy pass, {args.rows:,}-row step log (median over logs): "
        f"{statistics.median(ratios):.1f}x (target <= 3x)"
    )


if __name__ == "__main__":
    main()
