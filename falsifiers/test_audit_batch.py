"""The bulk replay of ``contracts audit`` decides exactly what the row-by-row replay does.

On random step logs (random lengths and steps, NaN, ±inf and empty cells, constant runs,
spikes, out-of-range norms, negative throughput) and random contracts of every step kind
(small windows and patiences so they fire; abort, warn and stop; a final-point
invariant), each log is audited twice, in bulk (:func:`batch_replay` over
:class:`StepColumns`) and row by row (:func:`replay`, the bulk path switched off), as CSV
or parquet. The two run dirs must hold the same verdict (statuses, counts, worst and last
observations, ``aborted_by``, early stop), the same evidence events in the same order
(times and hash chain aside), the same ``metrics.parquet`` rows and the same
``audit.json`` — and the bulk path must really have been taken.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from traingate.ci.audit import AuditError, audit_metrics, bulk, columns
from traingate.ci.audit.columns import step_columns
from traingate.contract.regime import FromScratch
from traingate.runtime.evidence import read_evidence

VOCAB = 16
COLUMNS = ("step", "loss", "grad_norm", "lr", "tokens_per_sec")
ACTIONS = st.sampled_from(["abort", "warn", "stop"])
SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, None, 0.0, -0.0])


@st.composite
def cells(draw: Any, n: int, low: float, high: float) -> list[float | None]:
    """A column: noise in [low, high] with specials, constant runs and spikes."""
    out: list[float | None] = []
    while len(out) < n:
        pick = draw(st.integers(0, 9))
        if pick == 0:
            out.append(draw(SPECIAL))
        elif pick == 1 and out:  # a constant run (a placeholder)
            out += [out[-1]] * draw(st.integers(1, 6))
        elif pick == 2:  # a spike / an out-of-range value
            out.append(draw(st.sampled_from([high * 50, low / 1000, -high, 1e300])))
        else:
            out.append(draw(st.floats(low, high, allow_nan=False)))
    return out[:n]


@st.composite
def step_logs(draw: Any) -> dict[str, list[Any]]:
    n = draw(st.integers(1, 120))
    steps, step = [], draw(st.integers(-3, 5))
    for _ in range(n):
        steps.append(step)
        step += draw(st.sampled_from([1, 1, 1, 2, 0, 7]))
    log: dict[str, list[Any]] = {"step": steps}
    log["loss"] = draw(cells(n, 0.5, 4.0))
    log["grad_norm"] = draw(cells(n, 0.0005, 20.0))
    log["lr"] = draw(cells(n, 1e-5, 1e-3))
    log["tokens_per_sec"] = draw(cells(n, -10.0, 100.0))
    return log


@st.composite
def contracts(draw: Any) -> dict[str, Any]:
    """A contract with every step kind, small windows, random actions, one final check."""

    def inv(i: int, check: str, params: dict[str, Any], at: str = "step") -> dict[str, Any]:
        return {
            "id": f"INV-BATCH-{i:03d}",
            "title": f"batch {check}",
            "check": check,
            "at": at,
            "params": params,
            "on_violation": draw(ACTIONS) if at == "step" else "warn",
        }

    lo = draw(st.sampled_from([1e-3, 0.01, 0.1]))
    relation = draw(st.sampled_from([">=", ">", "<=", "!="]))
    # ``lr ** 2`` has no column form: that invariant is replayed through its own Check
    bound = draw(st.sampled_from(["0", "-5", "lr * 1000", "2 * lr - 1", "10 / 4", "lr ** 2"]))
    invariants = [
        inv(
            1,
            "finite",
            {
                "observations": draw(
                    st.sampled_from([["loss", "grad_norm"], ["loss"], ["lr", "grad_norm"]])
                )
            },
        ),
        inv(
            2,
            "gradient_norm",
            {
                "min_norm": lo,
                # 1e-4 is below every min_norm: the check rejects the first row (a crash)
                "max_norm": draw(st.sampled_from([1.0, 10.0, 100.0, 1e-4])),
                "patience": draw(st.integers(1, 4)),
            },
        ),
        inv(
            3,
            "loss_spike",
            {
                "spike_factor": draw(st.sampled_from([1.2, 2.0, "1 + 1"])),
                "window": draw(st.integers(1, 12)),
                "patience": draw(st.integers(0, 3)),
            },
        ),
        inv(
            4,
            "initial_loss",
            {"num_classes": "vocab_size", "tolerance": draw(st.sampled_from([0.1, 0.5, 1.0]))},
        ),
        inv(
            5,
            "expression",
            {
                "predicate": f"tokens_per_sec {relation} {bound}",
                "metrics": ["tokens_per_sec", *(["lr"] if "lr" in bound else [])],
            },
        ),
        inv(
            6,
            "no_placeholder",
            {
                "observations": ["loss", "grad_norm"],
                "window": draw(st.integers(2, 5)),
                **({"fingerprint": {"lr": 0.0}} if draw(st.booleans()) else {}),
            },
        ),
        inv(
            7,
            "metrics_present",
            {
                "observations": draw(
                    st.sampled_from([["loss", "grad_norm"], ["loss", "lr", "tokens_per_sec"]])
                )
            },
        ),
        inv(8, "expression", {"predicate": "loss >= 0", "metrics": ["loss"]}, at="final"),
    ]
    chosen = draw(
        st.lists(st.sampled_from(invariants[:7]), min_size=1, unique_by=lambda i: i["id"])
    )
    chosen = [*sorted(chosen, key=lambda i: i["id"]), invariants[7]]
    head = {"contract": "C-BATCH", "version": "1.0.0", "title": "batch", "status": "active"}
    first = {"version": "1.0.0", "date": dt.date(2026, 1, 1), "change": "first"}
    gate = {"id": "GATE-BATCH-001", "requires": [i["id"] for i in chosen], "ship_blocking": True}
    vocab = {"vocab_size": {"type": "int", "min": 2}}
    return {
        **head,
        "changelog": [first],
        "parameters": vocab,
        "invariants": chosen,
        "gates": [gate],
    }


def write_log(folder: Path, log: dict[str, list[Any]], fmt: str) -> Path:
    if fmt == "parquet":
        path = folder / "steps.parquet"
        pq.write_table(
            pa.table(
                {c: pa.array(log[c], pa.int64() if c == "step" else pa.float64()) for c in COLUMNS}
            ),
            path,
        )
        return path
    path = folder / "steps.csv"
    rows = [",".join(COLUMNS)]
    for i in range(len(log["step"])):
        rows.append(",".join("" if (v := log[c][i]) is None else repr(v) for c in COLUMNS))
    path.write_text("\n".join(rows) + "\n")
    return path


def audited(log: Path, contract: Path, out: Path) -> dict[str, Any]:
    """The run dir's verdict, events, metrics rows and audit.json (or the error)."""
    try:
        audit_metrics(
            log,
            [contract],
            FromScratch(vocab_size=VOCAB),
            {"vocab_size": VOCAB},
            {c: c for c in COLUMNS},
            out,
        )
    except AuditError as exc:
        return {"error": str(exc)}
    verdict = json.loads((out / "verdict.json").read_text())
    verdict.pop("evidence_head")
    events = [
        {k: v for k, v in e.items() if k not in ("time", "chain")}
        for e in read_evidence(out / "evidence.jsonl")
    ]
    metrics = out / "metrics.parquet"
    table = pq.read_table(metrics) if metrics.exists() else pa.table({})
    rows = table.to_pylist()
    schema = [(f.name, str(f.type)) for f in table.schema]
    shown = [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    return {
        "verdict": verdict,
        "events": events,
        "metrics": shown,
        "schema": schema,
        "audit": json.loads((out / "audit.json").read_text()),
    }


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(log=step_logs(), contract=contracts(), fmt=st.sampled_from(["csv", "parquet"]))
def test_bulk_and_row_by_row_replays_are_identical(
    monkeypatch: pytest.MonkeyPatch, log: dict[str, list[Any]], contract: dict[str, Any], fmt: str
) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        (folder / "c.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
        path = write_log(folder, log, fmt)
        carried = all(
            any(log[c][i] is not None for c in ("loss", "grad_norm", "lr"))
            for i in range(len(log["step"]))
        )
        assert (
            step_columns(path, None, {c: c for c in COLUMNS}, {}, "auto") is not None
        ) == carried
        taken: list[bool] = []
        replay_in_bulk = bulk.batch_replay

        def spied(guard: Any, cols: Any) -> Any:
            done = replay_in_bulk(guard, cols)
            taken.append(done is not None)
            return done

        monkeypatch.setattr(bulk, "batch_replay", spied)
        monkeypatch.setattr(bulk.BulkMetrics, "SLICE", 7)  # metrics written 7 rows at a time
        fast = audited(path, folder / "c.yaml", folder / "bulk")
        monkeypatch.setattr(columns, "step_columns", lambda *a, **k: None)
        slow = audited(path, folder / "c.yaml", folder / "rows")
        monkeypatch.undo()
        assert fast == slow
        verdict = fast.get("verdict", {})
        event("crash" if "error" in fast else "aborted" if verdict["aborted_by"] else "ran")
        event(f"early stop: {verdict.get('early_stop') is not None}")
        event(f"warnings: {any(e['event'] == 'warning' for e in fast.get('events', []))}")
        if carried:
            crash = any(i["params"].get("max_norm") == 1e-4 for i in contract["invariants"])
            assert taken == [not crash]  # a crash is reported by the row-by-row replay
    finally:
        shutil.rmtree(folder)
