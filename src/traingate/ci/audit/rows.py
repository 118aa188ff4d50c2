"""Turn a table's raw cells into typed rows, each saying which point(s) it feeds.

Which rows feed which point:
  * a row feeds a **step** when its ``step`` cell is filled and it carries a step
    observation (``loss`` is then required: ``Guard.step`` takes one per step);
  * a row feeds a **validation** when its ``epoch`` cell is filled and it carries a
    validation observation (``val_loss`` or ``val_components.*``);
  * a row carrying values whose step/epoch cell is empty is an error (located);
  * a row carrying no step or validation value (only extras, or every mapped value empty)
    is a row of the kind whose rows fill the cells it fills: a step row when every cell it
    fills is filled on some step row, likewise a validation row (by its step/epoch cell
    when no row of that kind carries a value, or when it could be either); a row of no
    kind is skipped and listed with why, one of either kind is an error;
  * on a row of a kind, an empty or null mapped cell (how pandas writes NaN) is NaN: a
    step row's empty ``loss`` is ``loss=nan``. Extras ride along with the row, NaN when
    empty on the kinds of rows they are filled on elsewhere. A key a JSON line leaves out
    is not observed. ``where`` filters rows first (those it leaves out are counted).
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

KINDS = ("step", "validation")
INDEX_OF = {"step": "step", "validation": "epoch"}


def _place(number: int, line: int | None) -> str:
    return f"row {number}" + (f" (line {line})" if line else "")


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
        index = ", ".join(
            f"{k} {v}" for k, v in (("step", self.step), ("epoch", self.epoch)) if v is not None
        )
        place = _place(self.number, self.line)
        return f"{place}, {index}" if index else place


@dataclass(frozen=True)
class Skipped:
    """A row the replay leaves out, and why."""

    number: int
    line: int | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        """``{"row": …, "line": …, "why": …}`` for ``audit.json``."""
        return {"row": self.number, "line": self.line, "why": self.why}


@dataclass
class Rows:
    """The rows ``where`` kept (``selected``): those to replay, in file order, and those
    skipped; ``excluded`` counts the rows ``where`` left out."""

    replay: list[Row]
    skipped: list[Skipped]
    selected: int
    excluded: int


@dataclass
class _Parsed:
    """A row's typed cells before it is given its kind(s)."""

    number: int
    line: int | None
    place: str
    values: dict[str, float | None]  # mapped observations in the row; None: empty or null
    filled: frozenset[str]  # the columns whose cells are filled, mapped or not
    index: dict[str, int | None]  # kind → its step / epoch cell
    kinds: set[str] = field(default_factory=set)
    why: str | None = None

    def carried(self, kind: str) -> list[str]:
        """The filled observations of ``kind`` (``step`` or ``validation``) in the row."""
        return [o for o, v in self.values.items() if v is not None and point_of(o) == kind]


def is_filled(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())


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


def matches(cell: Any, wanted: str) -> bool:
    """``--where``'s cell test: equal as text, or equal as numbers."""
    if cell is None:
        return False
    if str(cell).strip() == wanted:
        return True
    try:
        return float(str(cell)) == float(wanted)
    except ValueError:
        return False


def build_rows(table: Table, mapping: Mapping[str, str], where: Mapping[str, str]) -> Rows:
    """Mapped, typed rows in file order (``where`` filters first); see the module rule."""
    unknown = [c for c in where if c not in table.columns]
    if unknown:
        raise AuditError(
            f"{table.path}: --where column(s) not in the file: {', '.join(unknown)}; "
            f"columns: {', '.join(table.columns)}"
        )
    by_observation = {obs: col for col, obs in mapping.items()}
    index_columns = {k: by_observation.get(INDEX_OF[k]) for k in KINDS}
    parsed: list[_Parsed] = []
    for number, (cells, line) in enumerate(zip(table.rows, table.lines, strict=True), 1):
        if all(matches(cells.get(c), v) for c, v in where.items()):
            parsed.append(_parse(table, number, line, cells, by_observation, index_columns))
    if not parsed:
        raise AuditError(
            f"{table.path}: no data rows"
            + (f" match --where {', '.join(f'{c}={v}' for c, v in where.items())}" if where else "")
        )
    for p in parsed:
        _kind_by_values(p, index_columns)
    unions: dict[str, set[str] | None] = {k: None for k in KINDS}
    for p in parsed:
        for kind in p.kinds:
            unions[kind] = (unions[kind] or set()) | p.filled
    planned = [k for k in KINDS if index_columns[k]]
    for p in parsed:
        if not p.kinds and p.why is None:
            _kind_by_cells(p, unions, planned, index_columns)
    extra_kinds: dict[str, set[str]] = {o: set() for o in by_observation if point_of(o) == "extra"}
    for p in parsed:
        for o in extra_kinds:
            if p.values.get(o) is not None:
                extra_kinds[o] |= p.kinds
    rows = [_row(p, extra_kinds) for p in parsed if p.kinds]
    skipped = [Skipped(p.number, p.line, p.why) for p in parsed if p.why is not None]
    return Rows(rows, skipped, len(parsed), len(table.rows) - len(parsed))


def _parse(
    table: Table,
    number: int,
    line: int | None,
    cells: Mapping[str, Any],
    by_observation: Mapping[str, str],
    index_columns: Mapping[str, str | None],
) -> _Parsed:
    place = f"{table.path}: {_place(number, line)}"
    values = {
        obs: _number(cells[col], place, col)
        for obs, col in by_observation.items()
        if obs not in INDEX and col in cells
    }
    index = {
        kind: _index(_number(cells.get(col), place, col), place, col) if col else None
        for kind, col in index_columns.items()
    }
    filled = frozenset(c for c, cell in cells.items() if is_filled(cell))
    return _Parsed(number, line, place, values, filled, index)


def _kind_by_values(p: _Parsed, index_columns: Mapping[str, str | None]) -> None:
    """The kinds a row's filled step / validation values give it; an error when it carries
    values but its mapped step/epoch cell is empty; no kind when it carries none."""
    carried = {kind: p.carried(kind) for kind in KINDS}
    p.kinds = {k for k in KINDS if carried[k] and p.index[k] is not None}
    if p.kinds or not any(carried.values()):
        return
    for kind in KINDS:
        if carried[kind] and index_columns[kind]:
            raise AuditError(
                f"{p.place}: column {index_columns[kind]} (the {INDEX_OF[kind]} index) is "
                f"empty, but the row has {', '.join(carried[kind])}"
            )
    kind = next(k for k in KINDS if carried[k])
    p.why = (
        f"it has {', '.join(carried[kind])} ({kind} values) but no column is mapped to "
        f"{INDEX_OF[kind]}"
    )


def _kind_by_cells(
    p: _Parsed,
    unions: Mapping[str, set[str] | None],
    planned: list[str],
    index_columns: Mapping[str, str | None],
) -> None:
    """Give a row without step / validation values the kind whose rows fill its cells."""
    if not p.values:
        p.why = f"it has none of the mapped value columns (only {', '.join(sorted(p.filled))})"
        return
    matches, reasons = [], []
    for kind in planned:
        union = unions[kind]
        if union is None:  # no row of this kind carries a value: go by its index cell
            if p.index[kind] is not None:
                matches.append(kind)
            else:
                reasons.append(f"not a {kind} row: its {index_columns[kind]} cell is empty")
        elif p.filled <= union:
            matches.append(kind)
        else:
            others = ", ".join(sorted(p.filled - union))
            reasons.append(f"not a {kind} row: it fills {others}, which no {kind} row does")
    if len(matches) > 1:
        indexed = [k for k in matches if p.index[k] is not None]
        if len(indexed) > 1:
            raise AuditError(
                f"{p.place}, step {p.index['step']}, epoch {p.index['validation']}: no mapped "
                "value is filled and its cells match step and validation rows alike: cannot "
                "tell a NaN step from a NaN validation; select rows with --where"
            )
        matches = indexed or matches[:1]
    if not matches:
        p.why = "; ".join(reasons)
        return
    kind = matches[0]
    if p.index[kind] is None:
        raise AuditError(
            f"{p.place}: column {index_columns[kind]} (the {INDEX_OF[kind]} index) is empty "
            f"on a {kind} row (its cells match the {kind} rows)"
        )
    p.kinds = {kind}


def _row(p: _Parsed, extra_kinds: Mapping[str, set[str]]) -> Row:
    """The replayable row: each kind's observations, an empty or null one as NaN."""
    row = Row(p.number, p.line, p.index["step"], p.index["validation"])
    fed: dict[str, float] = {}
    for kind in sorted(p.kinds):
        obs = {
            o: math.nan if v is None else v
            for o, v in p.values.items()
            if point_of(o) == kind
            or (point_of(o) == "extra" and (v is not None or kind in (extra_kinds[o] or KINDS)))
        }
        if kind == "step" and "loss" not in obs:
            raise AuditError(f"{p.place}: a step row needs a loss value")
        fed.update(obs)
        if kind == "step":
            row.step_obs = _grouped(obs)
        else:
            row.val_obs = _grouped(obs)
    filled = {o: v for o, v in p.values.items() if v is not None}
    row.scalars = {k: v for k, v in (filled | fed).items() if "." not in k}
    return row


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
