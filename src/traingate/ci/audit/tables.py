"""Read a metrics log (CSV/TSV, JSON lines or parquet) into a :class:`Table` of raw cells.

JSON and parquet records are flattened: a nested ``{"components": {"a": 1}}`` becomes the
column ``components.a``. Cells stay raw: an empty CSV cell is ``""``, a JSON/parquet null
``None`` (both NaN to :mod:`.rows`); a key a JSON line leaves out is absent from its row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traingate.ci.audit.errors import AuditError

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class Table:
    """A metrics log read into rows of raw cells; ``lines`` locate rows in text files."""

    path: Path
    fmt: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]


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
        # a missing trailing cell is an empty one, as pandas reads it
        rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True)))
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
    rows: list[dict[str, Any]] = []
    lines: list[int | None] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise AuditError(f"{path}:{number}: expected a JSON object per line")
        rows.append(_flatten(record))
        lines.append(number)
    return _from_records(path, "jsonl", rows, lines)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise AuditError(f"{path}: not a readable parquet file ({exc})") from None
    records = [_flatten(r) for r in table.to_pylist()]
    return _from_records(path, "parquet", records, [None] * len(records))


def _from_records(
    path: Path, fmt: str, records: list[dict[str, Any]], lines: list[int | None]
) -> Table:
    """A table of flattened records; its columns are every key seen, in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return Table(path, fmt, list(columns), records, lines)
