"""A plain step log typed in bulk: numpy columns instead of one dict per row.

The common shape of a step log, a CSV/TSV or parquet file whose every row is a step row
(its step cell an integer, at least one step value filled) with only step values and
extras mapped and no ``--where``, gives exactly the rows :func:`.rows.build_rows` would
(every mapped value on every row, NaN when empty; no row skipped) without building them.
:func:`step_columns` returns None for anything else (validation values, components,
quoted or oddly spaced CSV, a cell Python's ``float`` would read differently, …), and the
audit then reads the log row by row as before.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from traingate.ci.audit.mapping import point_of
from traingate.ci.audit.rows import Row
from traingate.ci.audit.tables import detect_format

# bytes a plain CSV has none of (its header may be quoted): quotes, line breaks but \n
UNPLAIN = (b'"', b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")


@dataclass
class StepColumns:
    """Step rows as columns: row numbers and lines, steps, each mapped observation's
    values (NaN when empty, mapping order) and whether its cell was filled."""

    fmt: str
    columns: list[str]
    numbers: np.ndarray
    lines: np.ndarray | None
    steps: np.ndarray
    values: dict[str, np.ndarray]
    filled: dict[str, np.ndarray]
    digest: Callable[[], str]  # the SHA-256 of the bytes read (:func:`hashed`)

    def row(self, i: int) -> Row:
        """Row ``i`` (from 0) as the row-by-row replay knows it (where, not its values)."""
        line = None if self.lines is None else int(self.lines[i])
        return Row(int(self.numbers[i]), line, int(self.steps[i]), None)

    def scalars(self, i: int) -> dict[str, float]:
        """What the final point sees after row ``i``: every mapped scalar's value there,
        keyed in the order the first row filled them (filled ones first)."""
        names = [o for o in self.values if self.filled[o][0]]
        names += [o for o in self.values if not self.filled[o][0]]
        return {o: float(self.values[o][i]) for o in names}


def step_columns(
    path: Path, fmt: str | None, mapping: Mapping[str, str], where: Mapping[str, str], index: str
) -> StepColumns | None:
    """The log as :class:`StepColumns` when it has the plain shape (module doc), else None
    (including for any error: the row-by-row reading then reports it)."""
    observations = list(mapping.values())
    if where or index not in ("auto", "column") or "step" not in observations:
        return None
    try:
        if any(point_of(o) not in ("step", "extra", "index") or "." in o for o in observations):
            return None
        if "epoch" in observations or len(set(observations)) < len(observations):
            return None
        fmt = fmt or detect_format(path)
        if fmt not in ("csv", "tsv", "parquet") or not path.is_file():
            return None
        data = path.read_bytes()
        read = _parquet(data) if fmt == "parquet" else _csv(data, fmt, list(mapping))
        return _typed(fmt, *read, mapping, data)
    except Exception:  # any doubt: the row-by-row path decides, and reports errors
        return None


def hashed(data: bytes) -> Callable[[], str]:
    """The SHA-256 of ``data`` (what ``audit.json`` records of the file read), computed on a
    worker thread while the audit goes on (hashlib lets go of the GIL): the file is read
    once, and its hashing overlaps the replay. An error there is raised by the call."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="traingate-sha256")
    hashing = pool.submit(lambda: hashlib.sha256(data).hexdigest())
    pool.shutdown(wait=False)  # the worker ends with its one task
    return hashing.result


def _csv(data: bytes, fmt: str, mapped: list[str]) -> tuple[Any, Any, list[str]]:
    """A plain CSV/TSV's mapped columns (as floats, but as string cells where a cell may
    spell NaN or inf or is not plainly a decimal), each row's line number, and the header."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    start = data.find(b"\n") + 1
    first = data[: start or len(data)]
    plain = all(data.find(c, start) < 0 and c not in first[:-1] for c in UNPLAIN[1:])
    if not start or not data.isascii() or not plain or data.find(b'"', start) >= 0:
        return None, None, []
    delimiter = "\t" if fmt == "tsv" else ","
    header = [h.strip() for h in next(csv.reader([first.decode()], delimiter=delimiter))]
    if len(header) < 2 or len(set(header)) < len(header) or not all(header):
        return None, None, []

    def read(kind: Any, columns: list[str]) -> Any:
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=header),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, kind),
                null_values=[""],
                strings_can_be_null=False,
            ),
        )

    try:  # as decimals (arrow trims blanks as float() does; "" is a null, empty)
        table = read(pa.float64(), mapped)
    except pa.ArrowInvalid:  # a cell float() may read otherwise (1_0): all as text
        table = read(pa.string(), mapped)
    else:
        # arrow reads more spellings of NaN and inf than float() ("nan(1)"): each column
        # where it read one (or a decimal too large, 1e400) is re-read as text
        odd = [c for c in mapped if not pc.all(pc.is_finite(table[c]), min_count=0).as_py()]
        if odd:
            text = read(pa.string(), odd)
            for c in odd:
                table = table.set_column(table.schema.get_field_index(c), c, text[c])
    return table, np.arange(2, table.num_rows + 2), header


def _parquet(data: bytes) -> tuple[Any, None, list[str]]:
    """A parquet file of flat numeric (or other unnested) columns, typed as it is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.py_buffer(data))
    names = table.column_names
    if len(set(names)) < len(names) or any(pa.types.is_struct(f.type) for f in table.schema):
        return None, None, []
    return table, None, names


def _number_column(column: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A column's cells as Python's ``float`` reads them (NaN when empty) and which are
    filled; None when a cell is not plainly a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if column.null_count == 0:
            return values, np.ones(len(values), bool)
        filled = column.is_valid().to_numpy(zero_copy_only=False)
        return np.where(filled, values, np.nan), filled
    if not pa.types.is_string(kind):
        return None
    cells = pc.utf8_trim(column, characters=" \t")
    filled = pc.not_equal(cells, "")
    numeric = pc.if_else(filled, cells, pa.scalar(None, pa.string()))
    values = pc.cast(numeric, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    filled = filled.to_numpy(zero_copy_only=False)
    # arrow reads what float() reads for decimals, but more for NaN ("nan(1)"): re-read those
    for i in np.flatnonzero(filled & ~np.isfinite(values)):
        values[i] = float(cells[int(i)].as_py())
    return values, filled


def _typed(
    fmt: str,
    table: Any,
    lines: np.ndarray | None,
    header: list[str],
    mapping: Mapping[str, str],
    data: bytes,
) -> StepColumns | None:
    """The table's mapped columns typed (read from ``data``, the file's bytes); None unless
    every row is a plain step row."""
    if table is None or table.num_rows == 0:
        return None
    values: dict[str, np.ndarray] = {}
    filled: dict[str, np.ndarray] = {}
    steps = None
    for column, observation in mapping.items():
        typed = _number_column(table.column(column))
        if typed is None:
            return None
        if observation == "step":
            index, full = typed
            if not full.all() or not np.all(np.isfinite(index)) or np.any(index != np.floor(index)):
                return None
            steps = index.astype(np.int64)
        else:
            values[observation], filled[observation] = typed
    carried = [filled[o] for o in values if point_of(o) == "step"]
    if steps is None or not carried or not np.logical_or.reduce(carried).all():
        return None
    numbers = np.arange(1, table.num_rows + 1)
    return StepColumns(fmt, header, numbers, lines, steps, values, filled, hashed(data))
