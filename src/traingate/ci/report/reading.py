"""What the report reads from a run dir: the metrics rows and the verdict's facts.

Every read of ``verdict.json`` the report makes is in :func:`verdict_view`, so a change of
the verdict's shape is one edit here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traingate.ci.runcheck import RunCheck
from traingate.runtime.evidence import METRICS


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """metrics.parquet rows (point, step, epoch, name, value), or a note on why there are none."""
    path = run_dir / METRICS
    if not path.is_file():
        return [], f"{path} is missing: no curves to draw"
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist(), None
    except Exception as exc:  # ImportError or any pyarrow read error: report, do not crash
        return [], f"{path} is unreadable ({type(exc).__name__}: {exc}): no curves to draw"


@dataclass(frozen=True)
class VerdictView:
    """The verdict as the report uses it: the run's facts (label → text) and, per
    invariant id, the evaluations it kept (worst and last, where recorded)."""

    facts: dict[str, str]
    kept: dict[str, list[Mapping[str, Any]]]


def verdict_view(check: RunCheck) -> VerdictView:
    """The facts and kept evaluations of ``check``'s verdict (the report's one verdict read)."""
    v = check.verdict.to_dict()  # plain values: NaN/inf as the strings the page shows
    contracts = ", ".join(f"{k}@{ver}" for k, ver in v["contracts"].items())
    regime = v["regime"] or {}
    facts = {
        "contracts": contracts or "—",
        "regime": ", ".join(f"{k}={val}" for k, val in regime.items()) or "—",
        "params": ", ".join(f"{k}={val}" for k, val in v["params"].items()) or "—",
        "evaluations": str(v["evaluations"]),
        "last step / epoch": f"{v['last_step']} / {v['last_epoch']}",
    }
    kept = {
        inv_id: [e for e in (record["worst"], record["last"]) if e is not None]
        for inv_id, record in v["invariants"].items()
    }
    return VerdictView(facts, kept)
