"""Replay typed rows through the same :class:`traingate.Guard` a training loop uses.

A row feeding both points is replayed step first, then validation (a loop's order).
After the last row (unless an abort stopped the replay) final-point invariants see the
last value of every mapped scalar, as a loop's ``guard.final()`` would. The run dir gets
the Guard's ``evidence.jsonl``/``verdict.json``/``metrics.parquet``, plus ``audit.json``
(source file, digest, mapping, rows replayed, where an abort stopped the replay, and every
row skipped, with why; rows ``--where`` left out are counted as ``excluded``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.mapping import plan
from traingate.ci.audit.rows import Row, build_rows
from traingate.ci.audit.tables import read_table
from traingate.ci.runcheck import AUDIT
from traingate.contract.regime import Finetune, FromScratch
from traingate.files import atomic_write_text
from traingate.runtime.evidence import EVIDENCE, VERDICT, jsonable
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.verdict import Verdict


@dataclass
class Replayed:
    """How a replay went: rows replayed, where an abort stopped it, and the error that
    ended it (``current`` is the row being fed then; None at the final point)."""

    replayed: int = 0
    stopped: dict[str, Any] | None = None
    error: BaseException | None = None
    current: Row | None = None


def replay(guard: Guard, rows: Sequence[Row]) -> Replayed:
    """Feed ``rows`` to ``guard`` as a loop would, then its final point; the guard stays open.

    An abort or a check rejecting a row ends the replay and is returned, not raised; an
    interrupt (any other BaseException) closes the guard with it and propagates.
    """
    done = Replayed()
    last: dict[str, float] = {}
    try:
        for row in rows:
            done.current = row
            if row.step_obs:
                guard.step(row.step, **row.step_obs)  # type: ignore[arg-type]
            if row.val_obs:
                guard.validation(row.epoch, step=row.step, **row.val_obs)  # type: ignore[arg-type]
            last.update(row.scalars)
            done.replayed += 1
        if done.replayed and guard.by_point["final"]:
            done.current = None
            guard.final(**last)
    except InvariantViolation as exc:
        done.error = exc
        done.replayed += done.current is not None  # the aborting row was replayed up to the abort
        done.stopped = {
            "row": done.current.number if done.current else None,
            "line": done.current.line if done.current else None,
            "point": exc.record.at,
            "invariant": exc.invariant_id,
            "step": exc.step,
            "epoch": exc.epoch,
        }
    except Exception as exc:  # a check rejecting a row: record the crash, then report it
        done.error = exc
    except BaseException as exc:
        guard.close(exc)
        raise
    return done


@dataclass(frozen=True)
class Audited:
    """An audit's outcome: the Guard's verdict and the provenance written to ``audit.json``
    (``audit["stopped_at"]`` is the row an abort stopped the replay at, or None;
    ``audit["skipped_rows"]`` lists each row left out: ``{"row", "line", "why"}``)."""

    verdict: Verdict
    audit: dict[str, Any]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def audit_metrics(
    path: str | Path,
    contracts: Sequence[str | Path] | None,
    regime: Finetune | FromScratch | None,
    params: Mapping[str, float] | None,
    mapping: Mapping[str, str],
    run_dir: str | Path,
    *,
    only: Sequence[str] | None = None,
    where: Mapping[str, str] | None = None,
) -> Audited:
    """Replay the metrics log at ``path`` through a Guard writing to ``run_dir``.

    Returns the Guard's verdict and the audit's provenance (also written to ``audit.json``).
    An abort violation stops the replay where the run would have stopped; its row is in
    ``audit["stopped_at"]``. Raises AuditError for unusable input (nothing is
    written then), or when a check cannot take a row (the run dir records the crash).
    """
    path, run_dir = Path(path), Path(run_dir)
    if (run_dir / VERDICT).exists() or (run_dir / EVIDENCE).exists():
        raise AuditError(f"{run_dir}: already holds a run; choose another output directory")
    table = read_table(path)
    selected = list(only) if only else None
    planner = Guard(contracts, regime=regime, params=params, only=selected)
    points = plan(planner, mapping, table.columns, path)
    rows = build_rows(table, mapping, where or {})
    guard = Guard(contracts, regime=regime, params=params, run_dir=run_dir, only=selected)
    done = replay(guard, rows.replay)
    verdict = guard.close(done.error)
    audit = {
        "source": str(path),
        "format": table.fmt,
        "sha256": _digest(path),
        "mapping": dict(mapping),
        "where": dict(where or {}),
        "only": selected,
        "points": sorted(points),
        "rows": rows.selected,
        "excluded": rows.excluded,
        "replayed": done.replayed,
        "skipped": len(rows.skipped),
        "skipped_rows": [s.to_dict() for s in rows.skipped],
        "stopped_at": done.stopped,
    }
    atomic_write_text(run_dir / AUDIT, json.dumps(jsonable(audit), indent=2) + "\n")
    if done.error is not None and not isinstance(done.error, InvariantViolation):
        place = done.current.where() if done.current else "final point"
        raise AuditError(f"{path}: {place}: {type(done.error).__name__}: {done.error}") from None
    return Audited(verdict, audit)
