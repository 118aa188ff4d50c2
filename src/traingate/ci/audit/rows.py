"""Turn a table's raw cells into typed rows, each saying which point(s) it feeds.

Which rows feed which point:
  * a row feeds a **step** when its ``step`` cell is filled and it carries a step
    observation (``loss`` is then required: ``Guard.step`` takes one per step);
  * a row feeds a **validation** when its ``epoch`` cell is filled and it carries a
    validation observation (``val_loss`` or ``val_components.*``);
  * extra scalars ride along with whatever the row feeds; a row carrying only extras
    feeds a validation when its epoch is filled, else a step when its step is filled;
  * a row feeding nothing is kept (the replay skips and counts it). ``where`` filters
    rows first.
So map ``epoch`` only to a column that marks validation passes: a per-step log whose
epoch column is filled on every row still replays as steps unless it carries ``val_*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.mapping import INDEX, point_of
from traingate.ci.audit.tables import Table


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
        """Where the row is (row, line, step, epoch), for a message about it."""
        place = f"row {self.number}" + (f" (line {self.line})" if self.line else "")
        index = ", ".join(
            f"{k} {v}" for k, v in (("step", self.step), ("epoch", self.epoch)) if v is not None
        )
        return f"{place}, {index}" if index else place


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
        step_part = {k: v for k, v in filled.items() if point_of(k) == "step"}
        val_part = {k: v for k, v in filled.items() if point_of(k) == "validation"}
        extras = {k: v for k, v in filled.items() if point_of(k) == "extra"}
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
