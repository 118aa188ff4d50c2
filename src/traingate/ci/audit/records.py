"""The row table every metrics-log reader produces, and the helpers the readers share.

A :class:`Table` holds raw cells (an empty CSV cell is ``""``, a null ``None``; both are NaN
to :mod:`.rows`), the files it was read from (for the audit's digest) and ``notes``:
warnings about what the log cannot show (a windowed average, unlogged steps).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from traingate.ci.audit.errors import AuditError


@dataclass
class Table:
    """A metrics log read into rows of raw cells; ``lines`` locate rows in text files."""

    path: Path
    fmt: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_csv_text(path: Path, text: str, fmt: str, delimiter: str = ",") -> Table:
    """Rows of a CSV/TSV text (header first); a missing trailing cell is an empty one."""
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
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
        # a missing trailing cell is an empty one, as pandas reads it
        rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True)))
        lines.append(reader.line_num)
    return Table(path, fmt, header, rows, lines, [path])


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"components": {"a": 1}}`` → ``{"components.a": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def records_table(
    path: Path,
    fmt: str,
    records: list[dict[str, Any]],
    lines: list[int | None],
    files: list[Path] | None = None,
) -> Table:
    """A table of flattened records; its columns are every key seen, in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return Table(path, fmt, list(columns), records, lines, files or [path])


def series_table(
    path: Path, fmt: str, points: Iterable[tuple[int, str, Any]], files: list[Path]
) -> Table:
    """One row per logged step from ``(step, name, value)`` points, in step order.

    A name logged twice at one step (a resumed run) starts a second row for that step, so
    no value is dropped; the table notes it.
    """
    by_step: dict[int, list[dict[str, Any]]] = {}
    for step, name, value in points:
        if name == "step":
            raise AuditError(f"{path}: a metric is named `step`, the step index column's name")
        rows = by_step.setdefault(step, [{"step": step}])
        if name in rows[-1]:
            rows.append({"step": step})
        rows[-1][name] = value
    if not by_step:
        raise AuditError(f"{path}: no scalar values logged")
    records = [row for step in sorted(by_step) for row in by_step[step]]
    table = records_table(path, fmt, records, [None] * len(records), files)
    repeated = [s for s, rows in by_step.items() if len(rows) > 1]
    if repeated:
        table.notes.append(
            f"{len(repeated)} step(s) are logged more than once (first: step "
            f"{min(repeated)}; a resumed run?): each logging is replayed as its own row"
        )
    gap = step_gap(sorted(by_step))
    if gap:
        table.notes.append(gap)
    return table


def step_gap(steps: list[int]) -> str | None:
    """A warning when logged steps are spaced more than 1 apart (the rest were not logged)."""
    gaps = Counter(b - a for a, b in pairwise(steps) if b > a)
    if not gaps or max(gaps) <= 1:
        return None
    every = gaps.most_common(1)[0][0]
    return (
        f"logged steps are up to {max(gaps)} apart (most often {every}): a failure on a "
        "step the log does not hold cannot be seen, so a pass covers the logged steps only"
    )
