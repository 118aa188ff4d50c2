"""Audit a log: :func:`audit_metrics` reads it (format named or detected), numbers its
validations, replays it through a Guard (:mod:`.replay`) and writes ``audit.json``.

Validation index (``validation_index``):
  * ``column``: the column mapped to ``epoch`` is the validation index (as for a CSV);
  * ``nth``: the n-th validation row (from 0, in file order, among the rows ``where``
    keeps) is the index; a row is a validation row when a column mapped to ``val_loss``
    or ``val_components.NAME`` is filled on it. A column mapped to ``epoch`` is dropped
    from the mapping then (Lightning's and the Trainer's ``epoch`` is the training epoch);
  * ``auto`` (default): ``nth`` for Lightning and Hugging Face logs that map a validation
    value, and for TensorBoard and MLflow ones that map one but no ``epoch``; else ``column``.
``audit.json`` records the format, the mode, the effective mapping, every file read (and
one digest over them) and the warnings. A plain step log (:mod:`.columns`) is typed and
replayed in bulk (:mod:`.bulk`), into the very run dir the row-by-row replay writes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.mapping import plan, point_of
from traingate.ci.audit.records import Table
from traingate.ci.audit.replay import Audited, replay
from traingate.ci.audit.rows import Rows, build_rows, is_filled, matches
from traingate.ci.audit.tables import read_table
from traingate.ci.runcheck import AUDIT
from traingate.contract.regime import Finetune, FromScratch
from traingate.files import atomic_write_text
from traingate.runtime.evidence import EVIDENCE, METRICS, VERDICT, jsonable
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.planning import UnevaluableWarning
from traingate.runtime.reference import Reference, read_reference, step_series

VALIDATION_INDEX = ("auto", "column", "nth")
NTH_COLUMN = "nth_validation"
NTH_BY_DEFAULT = frozenset({"hf", "lightning"})  # their epoch is the training epoch
NO_EPOCH = frozenset({"tensorboard", "mlflow"})  # series by step: no epoch unless logged


def index_validations(
    table: Table, mapping: Mapping[str, str], mode: str, where: Mapping[str, str]
) -> tuple[Table, dict[str, str], str]:
    """The table and mapping to replay under ``mode``, and the mode resolved (module doc)."""
    if mode not in VALIDATION_INDEX:
        choices = ", ".join(VALIDATION_INDEX)
        raise AuditError(f"--validation-index: {mode!r} is not one of {choices}")
    val_columns = [c for c, o in mapping.items() if point_of(o) == "validation"]
    if mode == "auto":
        by_default = table.fmt in NTH_BY_DEFAULT or (
            table.fmt in NO_EPOCH and "epoch" not in mapping.values()
        )
        mode = "nth" if by_default and val_columns else "column"
    if mode == "column":
        return table, dict(mapping), mode
    if not val_columns:
        raise AuditError(
            "--validation-index nth numbers validation rows: map a column to val_loss or "
            "val_components.NAME"
        )
    if NTH_COLUMN in table.columns:
        raise AuditError(
            f"{table.path}: has a column named {NTH_COLUMN}; use --validation-index column"
        )
    # every kept row carries the index the next validation gets, so a validation pass
    # whose values are all empty (NaN) is still numbered and judged, not dropped
    rows, n = [], 0
    for cells in table.rows:
        if all(matches(cells.get(c), v) for c, v in where.items()):
            cells = {**cells, NTH_COLUMN: n}
            n += any(is_filled(cells.get(c)) for c in val_columns)
        rows.append(cells)
    effective = {c: o for c, o in mapping.items() if o != "epoch"} | {NTH_COLUMN: "epoch"}
    return replace(table, columns=[*table.columns, NTH_COLUMN], rows=rows), effective, mode


def indexed(
    path: Path, fmt: str | None, mapping: Mapping[str, str], mode: str, where: Mapping[str, str]
) -> tuple[Table, dict[str, str], str]:
    """The log at ``path`` read row by row, with :func:`index_validations` applied."""
    return index_validations(read_table(path, fmt), mapping, mode, where)


def digest(files: Sequence[Path]) -> str:
    """The SHA-256 of one file, or of each file's name and bytes in turn for several."""
    h = hashlib.sha256()
    for file in files:
        if len(files) > 1:
            h.update(file.name.encode() + b"\0")
        with file.open("rb") as fh:
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
    fmt: str | None = None,
    validation_index: str = "auto",
    reference: str | Path | None = None,
) -> Audited:
    """Replay the log at ``path`` (format ``fmt`` or detected) through a Guard in ``run_dir``.

    Returns the Guard's verdict and the audit's provenance (also written to ``audit.json``):
    an abort stops the replay where the run would have stopped (``audit["stopped_at"]``),
    ``audit["warnings"]`` lists what the log cannot show, ``audit["validation_index"]`` the
    mode used. ``reference`` (a run dir, or a log read like this one: see
    :func:`reference_run`) is what ``reproducible`` invariants compare with. Raises
    AuditError for unusable input (nothing is written then), or when a check cannot take a
    row (the run dir records the crash).
    """
    path, run_dir, where = Path(path), Path(run_dir), dict(where or {})
    if (run_dir / VERDICT).exists() or (run_dir / EVIDENCE).exists():
        raise AuditError(f"{run_dir}: already holds a run; choose another output directory")
    from traingate.ci.audit.bulk import BulkMetrics, batch_replay  # numpy: not on the import path
    from traingate.ci.audit.columns import step_columns

    cols = step_columns(path, fmt, mapping, where, validation_index) if reference is None else None
    table = None
    if cols is None:
        table, effective, index_mode = indexed(path, fmt, mapping, validation_index, where)
    else:
        effective, index_mode = dict(mapping), "column"
    selected = list(only) if only else None
    ref = (
        reference_run(Path(reference), fmt, mapping, where, validation_index)
        if reference is not None
        else None
    )
    with warnings.catch_warnings():  # what the replay cannot evaluate goes to audit.json
        warnings.simplefilter("ignore", UnevaluableWarning)
        planner = Guard(contracts, regime=regime, params=params, only=selected, reference=ref)
        points = plan(planner, effective, cols.columns if cols else table.columns, path)
        guard = Guard(
            contracts, regime=regime, params=params, run_dir=run_dir, only=selected, reference=ref
        )
    try:
        done = batch_replay(guard, cols) if cols is not None else None
        bulk = cols if done is not None else None
        if bulk is not None:  # no row skipped, none excluded
            rows = Rows([], [], len(bulk.steps), 0)
            fmt_read, files = bulk.fmt, [path]
        else:
            if table is None:  # the bulk replay could not decide a row: replay row by row
                table, effective, index_mode = indexed(path, fmt, mapping, validation_index, where)
            rows = build_rows(table, effective, where)
            done = replay(guard, rows.replay)
            fmt_read, files = table.fmt, table.files or [path]
        verdict = guard.close(done.error)
    finally:  # a metrics.parquet the bulk replay began writing and close did not end
        if isinstance(guard.metrics, BulkMetrics):
            guard.metrics.settle()
    sha256 = bulk.digest() if bulk is not None else digest(files)  # the bytes replayed
    audit = {
        "source": str(path),
        "format": fmt_read,
        "files": [str(f) for f in files],
        "sha256": sha256,
        "mapping": effective,
        "validation_index": index_mode,
        "where": where,
        "only": selected,
        "points": sorted(points),
        "rows": rows.selected,
        "excluded": rows.excluded,
        "replayed": done.replayed,
        "skipped": len(rows.skipped),
        "skipped_rows": [s.to_dict() for s in rows.skipped],
        "stopped_at": done.stopped,
        "early_stop_at": done.early_stop,
        "warnings": [
            *(table.notes if table is not None else []),
            *(u.message for u in guard.unevaluable),  # also in the `unevaluable` event
        ],
        "reference": ref.identity() if ref is not None else None,
    }
    atomic_write_text(run_dir / AUDIT, json.dumps(jsonable(audit), indent=2) + "\n")
    if done.error is not None and not isinstance(done.error, InvariantViolation):
        place = done.current.where() if done.current else "final point"
        raise AuditError(f"{path}: {place}: {type(done.error).__name__}: {done.error}") from None
    return Audited(verdict, audit)


def reference_run(
    path: Path,
    fmt: str | None,
    mapping: Mapping[str, str],
    where: Mapping[str, str],
    validation_index: str,
) -> Reference:
    """``--reference``: a run dir holding ``metrics.parquet``, or else a step log of the
    audited log's format, read with the same mapping and ``where``; AuditError naming the
    path when it is missing or holds no step rows."""
    if not path.exists():
        raise AuditError(f"{path}: no such reference run dir or log")
    if path.is_dir() and (path / METRICS).is_file():
        return read_reference(path)
    table, effective, _ = indexed(path, fmt, mapping, validation_index, where)
    points, steps, names, values = [], [], [], []
    for row in build_rows(table, effective, where).replay:
        for name, value in row.step_obs.items():
            if row.step is not None and isinstance(value, int | float):
                points.append("step")
                steps.append(row.step)
                names.append(name)
                values.append(float(value))
    series = step_series(points, steps, names, values)
    if not series:
        raise AuditError(f"{path}: the reference log holds no step rows to compare with")
    return Reference(path, series)
