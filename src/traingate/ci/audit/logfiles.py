"""Read the logs trainers leave on disk: an MLflow file-store run, a Hugging Face
``trainer_state.json`` and a Lightning CSVLogger ``metrics.csv``, each into a :class:`Table`.

* MLflow: ``mlruns/<exp>/<run>/metrics/<name>`` files of ``timestamp value step`` lines
  (a nested ``metrics/a/b`` file is the metric ``a/b``); one row per step.
* Hugging Face: ``log_history`` entries as rows (``loss``, ``grad_norm``,
  ``learning_rate``, ``step``, ``epoch``; eval entries ``eval_loss``…). Its losses are
  averages over ``logging_steps`` and the Trainer's ``logging_nan_inf_filter`` (on by
  default) keeps a NaN/inf step loss out of them: the table notes both.
* Lightning: ``metrics.csv`` as CSV (train and validation metrics on separate rows); its
  ``epoch`` column is the training epoch, not a validation counter.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.records import (
    Table,
    read_csv_text,
    records_table,
    series_table,
    step_gap,
)

TRAINER_STATE = "trainer_state.json"
LIGHTNING_CSV = "metrics.csv"


def _text(path: Path) -> str:
    if not path.is_file():
        raise AuditError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: unreadable ({exc})") from None


def mlflow_metrics_dir(path: Path) -> Path:
    """The ``metrics`` folder of an MLflow run folder (or ``path`` when it is one)."""
    if (path / "metrics").is_dir():
        return path / "metrics"
    if path.name == "metrics" and path.is_dir():
        return path
    raise AuditError(f"{path}: not an MLflow run folder (no metrics/ folder in it)")


def read_mlflow(path: Path) -> Table:
    """The metrics of an MLflow file-store run folder, one row per logged step."""
    folder = mlflow_metrics_dir(path)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise AuditError(f"{folder}: no metric files")
    points: list[tuple[int, int, str, float]] = []
    for file in files:
        name = file.relative_to(folder).as_posix()
        for number, line in enumerate(_text(file).splitlines(), 1):
            cells = line.split()
            if not cells:
                continue
            if len(cells) not in (2, 3):
                raise AuditError(f"{file}:{number}: expected `timestamp value step`, got {line!r}")
            try:
                stamp, value = int(cells[0]), float(cells[1])
                step = int(cells[2]) if len(cells) == 3 else 0
            except ValueError:
                raise AuditError(
                    f"{file}:{number}: expected `timestamp value step` numbers, got {line!r}"
                ) from None
            points.append((step, stamp, name, value))
    points.sort(key=lambda p: (p[0], p[1]))
    return series_table(path, "mlflow", ((s, n, v) for s, _, n, v in points), files)


def _load_state(path: Path) -> dict[str, Any]:
    text = _text(path)
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise AuditError(f"{path}: no `log_history` list (not a Hugging Face trainer_state.json)")
    return state


def read_trainer_state(path: Path) -> Table:
    """The ``log_history`` of a Hugging Face ``trainer_state.json`` (or its folder)."""
    if path.is_dir():
        path = path / TRAINER_STATE
    state = _load_state(path)
    records: list[dict[str, Any]] = []
    for i, entry in enumerate(state["log_history"]):
        if not isinstance(entry, dict):
            raise AuditError(f"{path}: log_history[{i}]: expected an object, got {entry!r}")
        records.append({k: v for k, v in entry.items() if not isinstance(v, list | dict)})
    if not records:
        raise AuditError(f"{path}: log_history is empty")
    table = records_table(path, "hf", records, [None] * len(records))
    table.notes.append(_hf_note(state, records))
    return table


def _hf_note(state: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """What a Trainer log cannot show: the losses are window averages, NaN/inf filtered."""
    logged = state.get("logging_steps")
    steps = sorted({r["step"] for r in records if "loss" in r and isinstance(r.get("step"), int)})
    window = logged if isinstance(logged, int | float) and logged > 0 else None
    if window is None and step_gap(steps):
        window = min(b - a for a, b in pairwise(steps) if b > a)
    nan_filter = (
        "the Trainer's logging_nan_inf_filter (on by default) leaves a NaN/inf step loss out "
        "of the logged loss, so a non-finite step loss may never appear in this log"
    )
    if window is not None and window > 1:
        return (
            f"each logged loss is an average over logging_steps={window:g} steps: one bad "
            f"step is diluted in its window, and {nan_filter}; a pass covers the logged "
            "averages, not every step"
        )
    return f"{nan_filter} (train with logging_nan_inf_filter=False to audit every loss)"


def lightning_shaped(columns: list[str]) -> bool:
    """A CSVLogger header: ``step`` and ``epoch`` beside at least one metric column."""
    return "step" in columns and "epoch" in columns and len(columns) > 2


def read_lightning(path: Path) -> Table:
    """A Lightning CSVLogger ``metrics.csv`` (or the version folder holding it)."""
    if path.is_dir():
        path = path / LIGHTNING_CSV
    table = read_csv_text(path, _text(path), "lightning")
    if not lightning_shaped(table.columns):
        raise AuditError(
            f"{path}: not a Lightning CSVLogger metrics.csv (needs step and epoch columns "
            f"beside the metrics); columns: {', '.join(table.columns)}"
        )
    steps: set[int] = set()
    for row in table.rows:
        try:
            steps.add(int(float(row["step"])))
        except ValueError:
            continue  # an empty or bad step cell is located by the row rules
    gap = step_gap(sorted(steps))
    if gap:
        table.notes.append(gap + " (Lightning logs every log_every_n_steps, default 50)")
    return table
