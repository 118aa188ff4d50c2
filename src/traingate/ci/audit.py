"""Replay an existing metrics log through the Guard, as if the run had been guarded.

The log is CSV/TSV, JSON lines, or parquet, one row per step or per epoch (or both kinds
in one file). Columns are mapped to observation names explicitly, never guessed:
``loss``, ``grad_norm``, ``lr``, ``components.NAME``, ``weights.NAME`` (step point),
``val_loss``, ``val_components.NAME`` (validation point), ``step``, ``epoch``, and any
other name as an extra scalar metric.

Which rows feed which point:
  * a row feeds a **step** when its ``step`` cell is filled and it carries a step
    observation (``loss`` is then required: ``Guard.step`` takes one per step);
  * a row feeds a **validation** when its ``epoch`` cell is filled and it carries a
    validation observation (``val_loss`` or ``val_components.*``);
  * extra scalars ride along with whatever the row feeds; a row carrying only extras
    feeds a validation when its epoch is filled, else a step when its step is filled;
  * a row feeding both is replayed step first, then validation (a loop's order);
  * a row feeding nothing is skipped and counted. ``where`` filters rows first;
  * after the last row (unless an abort stopped the replay) final-point invariants see
    the last value of every mapped scalar, as a loop's ``guard.final()`` would.
So map ``epoch`` only to a column that marks validation passes: a per-step log whose
epoch column is filled on every row still replays as steps unless it carries ``val_*``.

The replay uses the same :class:`traingate.Guard` a training loop uses, so the run dir
gets the same ``evidence.jsonl``/``verdict.json``/``metrics.parquet``, plus ``audit.json``
(source file, digest, mapping, rows replayed, where an abort stopped the replay).
Every observation the selected invariants need at a replayed point must be mapped,
else :class:`AuditError` lists what is unmapped and the columns that exist.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traingate.ci.runcheck import AUDIT
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.evidence import EVIDENCE, VERDICT, atomic_write_text, jsonable
from traingate.runtime.guard import Guard, InvariantViolation, Tracked

STEP_SCALARS = frozenset({"loss", "grad_norm", "lr"})
VAL_SCALARS = frozenset({"val_loss"})
GROUPS = {"components": "step", "weights": "step", "val_components": "validation"}
# tensors a log cannot hold, and Guard.step's own keyword ``model``
NOT_SCALARS = frozenset({"predictions", "labels", "probabilities", "embeddings", "groups", "model"})
INDEX = frozenset({"step", "epoch"})
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class AuditError(Exception):
    """The metrics log cannot be replayed as asked (unreadable, unmapped, bad cell): exit 2."""


@dataclass
class Table:
    """A metrics log read into rows of raw cells; ``lines`` locate rows in text files."""

    path: Path
    fmt: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]


@dataclass
class Row:
    """One replayable row: its number (1-based data row), where it is, and what it feeds."""

    number: int
    line: int | None
    step: int | None
    epoch: int | None
    step_obs: dict[str, Any] = field(default_factory=dict)
    val_obs: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)

    def where(self) -> str:
        place = f"row {self.number}" + (f" (line {self.line})" if self.line else "")
        index = ", ".join(
            f"{k} {v}" for k, v in (("step", self.step), ("epoch", self.epoch)) if v is not None
        )
        return f"{place}, {index}" if index else place


def read_table(path: str | Path) -> Table:
    """Read a CSV/TSV, JSON-lines or parquet metrics log (format from the file suffix)."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise AuditError(
            f"{path}: unknown metrics format {path.suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(sorted(SUFFIXES))}"
        )
    if not path.is_file():
        raise AuditError(f"{path}: no such file")
    try:
        if fmt == "parquet":
            return _read_parquet(path)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: unreadable ({exc})") from None
    return _read_jsonl(path, text) if fmt == "jsonl" else _read_csv(path, text, fmt)


def _read_csv(path: Path, text: str, fmt: str) -> Table:
    reader = csv.reader(text.splitlines(), delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise AuditError(f"{path}: empty file (no header row)") from None
    header = [h.strip() for h in header]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise AuditError(f"{path}: duplicate column names: {', '.join(duplicates)}")
    rows, lines = [], []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise AuditError(
                f"{path}:{reader.line_num}: {len(cells)} cells but {len(header)} columns"
            )
        rows.append(dict(zip(header, cells, strict=False)))
        lines.append(reader.line_num)
    return Table(path, fmt, header, rows, lines)


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _read_jsonl(path: Path, text: str) -> Table:
    columns: dict[str, None] = {}
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise AuditError(f"{path}:{number}: expected a JSON object per line")
        flat = _flatten(record)
        columns.update(dict.fromkeys(flat))
        rows.append(flat)
        lines.append(number)
    return Table(path, "jsonl", list(columns), rows, lines)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise AuditError(f"{path}: not a readable parquet file ({exc})") from None
    records = [_flatten(r) for r in table.to_pylist()]
    columns: dict[str, None] = {}
    for r in records:
        columns.update(dict.fromkeys(r))
    return Table(path, "parquet", list(columns), records, [None] * len(records))


# -- mapping -------------------------------------------------------------------------------


def _point_of(observation: str) -> str:
    """``step``, ``validation``, ``extra`` or ``index`` for a mapped observation name."""
    if observation in INDEX:
        return "index"
    if observation in STEP_SCALARS:
        return "step"
    if observation in VAL_SCALARS:
        return "validation"
    group, dot, name = observation.partition(".")
    if dot:
        if group not in GROUPS or not name:
            raise AuditError(
                f"observation {observation!r}: only components.NAME, weights.NAME and "
                "val_components.NAME have a dot"
            )
        return GROUPS[group]
    if observation in NOT_SCALARS or observation in GROUPS:
        raise AuditError(
            f"observation {observation!r} is not a scalar a metrics log can hold"
            + (f"; map columns to {observation}.NAME" if observation in GROUPS else "")
        )
    return "extra"


def observation_needs(tracked: Tracked) -> tuple[frozenset[str], frozenset[str]]:
    """(all of, at least one of) the observations an invariant's check reads.

    ``requires`` is declared on the class; some kinds name what they read in their params:
    ``expression`` its ``metrics`` (all needed), ``loss_balance`` its ``source``, ``finite``
    its ``observations`` (each optional, but one must be present to evaluate).
    """
    check = tracked.check
    params = check.params
    needs = set(check.requires) | set(type(check).metric_symbols(params))
    source = getattr(params, "source", None)
    if isinstance(source, str):
        needs.add(source)
    optional = getattr(params, "observations", None)
    any_of = frozenset(optional) if isinstance(optional, list) else frozenset()
    return frozenset(needs), any_of


def _provided(mapping: Mapping[str, str]) -> dict[str, set[str]]:
    """Observation names each point receives from ``mapping`` (groups collapse to a name)."""
    targets = set(mapping.values())
    names = {t.partition(".")[0] if "." in t else t for t in targets}
    extras = {t for t in targets if _point_of(t) == "extra"}
    step = {"step"} | {n for n in names if n in STEP_SCALARS or n in ("components", "weights")}
    val = {"epoch", "step"} | {n for n in names if n in VAL_SCALARS or n == "val_components"}
    final = {"step", "epoch"} | (targets & (STEP_SCALARS | VAL_SCALARS)) | extras
    return {"step": step | extras, "validation": val | extras, "final": final}


def plan(
    guard: Guard, mapping: Mapping[str, str], columns: Sequence[str], source: Path
) -> set[str]:
    """The points the replay will feed; AuditError when a needed observation is unmapped."""
    missing_columns = [c for c in mapping if c not in columns]
    if missing_columns:
        raise AuditError(
            f"{source}: mapped column(s) not in the file: {', '.join(missing_columns)}; "
            f"columns: {', '.join(columns)}"
        )
    seen: dict[str, str] = {}
    for column, observation in mapping.items():
        _point_of(observation)
        if observation in seen:
            raise AuditError(
                f"observation {observation!r} is mapped from two columns: "
                f"{seen[observation]} and {column}"
            )
        seen[observation] = column
    targets = set(mapping.values())
    points = {"final"}
    if "step" in targets:
        points.add("step")
    if "epoch" in targets:
        points.add("validation")
    if points == {"final"}:
        raise AuditError(
            f"{source}: map a column to `step` (step rows) or `epoch` (validation rows); "
            f"columns: {', '.join(columns)}"
        )
    if "step" in points and "loss" not in targets:
        raise AuditError(
            f"{source}: step rows need `loss` (every Guard step observes one): map a column "
            f"to loss; columns: {', '.join(columns)}"
        )
    provided = _provided(mapping)
    unmapped: list[str] = []
    for point in sorted(points):
        for t in guard.by_point[point]:
            needs, any_of = observation_needs(t)
            lacking = sorted(needs - provided[point])
            if any_of and not any_of & provided[point]:
                lacking.append(f"one of {'/'.join(sorted(any_of))}")
            if lacking:
                unmapped.append(f"{', '.join(lacking)} (for {t.invariant.id} at {point})")
    if unmapped:
        raise AuditError(
            f"{source}: unmapped observations: {'; '.join(unmapped)}; columns: "
            f"{', '.join(columns)}. Map them with --map COLUMN=OBSERVATION (components as "
            "components.NAME / val_components.NAME) or choose invariants with --only"
        )
    return points


# -- rows ----------------------------------------------------------------------------------


def _number(cell: Any, where: str, column: str) -> float | None:
    """A cell as a float (``nan``/``inf`` included: the checks must see them); None if empty."""
    if cell is None:
        return None
    if isinstance(cell, bool):
        raise AuditError(f"{where}: column {column}: {cell!r} is not a number")
    if isinstance(cell, int | float):
        return float(cell)
    text = str(cell).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise AuditError(f"{where}: column {column}: {text!r} is not a number") from None


def _index(value: float | None, where: str, column: str) -> int | None:
    if value is None:
        return None
    if not math.isfinite(value) or not value.is_integer():
        raise AuditError(f"{where}: column {column}: {value!r} is not an integer")
    return int(value)


def _matches(cell: Any, wanted: str) -> bool:
    if cell is None:
        return False
    if str(cell).strip() == wanted:
        return True
    try:
        return float(str(cell)) == float(wanted)
    except ValueError:
        return False


def build_rows(table: Table, mapping: Mapping[str, str], where: Mapping[str, str]) -> list[Row]:
    """Mapped, typed rows in file order (``where`` filters first); see the module rule."""
    unknown = [c for c in where if c not in table.columns]
    if unknown:
        raise AuditError(
            f"{table.path}: --where column(s) not in the file: {', '.join(unknown)}; "
            f"columns: {', '.join(table.columns)}"
        )
    by_observation = {obs: col for col, obs in mapping.items()}
    rows: list[Row] = []
    for number, (cells, line) in enumerate(zip(table.rows, table.lines, strict=True), 1):
        if not all(_matches(cells.get(c), v) for c, v in where.items()):
            continue
        place = f"{table.path}: row {number}" + (f" (line {line})" if line else "")
        values = {
            obs: _number(cells.get(col), place, col)
            for obs, col in by_observation.items()
            if obs not in INDEX
        }
        step, epoch = (
            _index(_number(cells.get(col), place, col), place, col) if col else None
            for col in (by_observation.get("step"), by_observation.get("epoch"))
        )
        row = Row(number, line, step, epoch)
        filled = {k: v for k, v in values.items() if v is not None}
        step_part = {k: v for k, v in filled.items() if _point_of(k) == "step"}
        val_part = {k: v for k, v in filled.items() if _point_of(k) == "validation"}
        extras = {k: v for k, v in filled.items() if _point_of(k) == "extra"}
        feeds_step = row.step is not None and bool(step_part)
        feeds_val = row.epoch is not None and bool(val_part)
        if extras and not feeds_step and not feeds_val:
            feeds_val = row.epoch is not None
            feeds_step = not feeds_val and row.step is not None
        if feeds_step:
            if "loss" not in step_part:
                raise AuditError(f"{place}: a step row needs a loss value")
            row.step_obs = _grouped(step_part) | extras
        if feeds_val:
            row.val_obs = _grouped(val_part) | extras
        row.scalars = {k: v for k, v in filled.items() if "." not in k}
        rows.append(row)
    if not rows:
        raise AuditError(
            f"{table.path}: no data rows"
            + (f" match --where {', '.join(f'{c}={v}' for c, v in where.items())}" if where else "")
        )
    return rows


def _grouped(values: Mapping[str, float]) -> dict[str, Any]:
    """``components.a`` → ``{"components": {"a": …}}``; scalars stay as they are."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        group, dot, name = key.partition(".")
        if dot:
            out.setdefault(group, {})[name] = value
        else:
            out[key] = value
    return out


# -- replay --------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """Replay the metrics log at ``path`` through a Guard writing to ``run_dir``.

    Returns the Guard's verdict with an ``audit`` entry (also written to ``audit.json``).
    An abort violation stops the replay where the run would have stopped; its row is in
    ``verdict["audit"]["stopped_at"]``. Raises AuditError for unusable input (nothing is
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
    replayed, skipped = 0, 0
    stopped: dict[str, Any] | None = None
    error: BaseException | None = None
    current: Row | None = None
    last: dict[str, float] = {}
    try:
        for current in rows:
            if not current.step_obs and not current.val_obs:
                skipped += 1
                continue
            if current.step_obs:
                guard.step(current.step, **current.step_obs)  # type: ignore[arg-type]
            if current.val_obs:
                guard.validation(current.epoch, step=current.step, **current.val_obs)  # type: ignore[arg-type]
            last.update(current.scalars)
            replayed += 1
        if replayed and guard.by_point["final"]:
            current = None
            guard.final(**last)
    except InvariantViolation as exc:
        error = exc
        replayed += current is not None  # the row that aborted was replayed (up to the abort)
        stopped = {
            "row": current.number if current else None,
            "line": current.line if current else None,
            "point": exc.record.at,
            "invariant": exc.invariant_id,
            "step": exc.step,
            "epoch": exc.epoch,
        }
    except Exception as exc:  # a check rejecting a row: record the crash, then report it
        error = exc
    except BaseException as exc:
        guard.close(exc)
        raise
    verdict = guard.close(error)
    audit = {
        "source": str(path),
        "format": table.fmt,
        "sha256": _digest(path),
        "mapping": dict(mapping),
        "where": dict(where or {}),
        "only": selected,
        "points": sorted(points),
        "rows": len(rows),
        "replayed": replayed,
        "skipped": skipped,
        "stopped_at": stopped,
    }
    atomic_write_text(run_dir / AUDIT, json.dumps(jsonable(audit), indent=2) + "\n")
    verdict["audit"] = audit
    if error is not None and not isinstance(error, InvariantViolation):
        place = current.where() if current else "final point"
        raise AuditError(f"{path}: {place}: {type(error).__name__}: {error}") from None
    return verdict


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["total_loss=val_loss", "epoch"]`` → ``{"total_loss": "val_loss", "epoch": "epoch"}``.

    A bare ``NAME`` maps the column of that name to the observation of that name.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, observation = pair.partition("=")
        column, observation = column.strip(), (observation.strip() if sep else column.strip())
        if not column or not observation:
            raise AuditError(f"--map expects COLUMN=OBSERVATION or COLUMN, got {pair!r}")
        if column in mapping:
            raise AuditError(f"--map: column {column} is mapped twice")
        mapping[column] = observation
    return mapping


def parse_where(pairs: Iterable[str]) -> dict[str, str]:
    """``["phase=val"]`` → ``{"phase": "val"}``: keep only rows whose cells match."""
    where: dict[str, str] = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        if not sep or not column.strip():
            raise AuditError(f"--where expects COLUMN=VALUE, got {pair!r}")
        where[column.strip()] = value.strip()
    return where
