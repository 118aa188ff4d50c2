"""Run-directory evidence: an append-only event log, the final verdict, the metrics seen.

``evidence.jsonl`` is flushed per event so a crash loses at most the line being written;
each line is hash-chained to the one before (:class:`EvidenceLog`), and a log reopened
after a crash has its torn last line cut off. ``verdict.json`` (:mod:`traingate.runtime.verdict`) is
written atomically at close.
``metrics.parquet`` (pyarrow, imported only when written) holds every scalar the Guard saw.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from traingate.errors import TraingateError
from traingate.files import atomic_write

EVIDENCE = "evidence.jsonl"
VERDICT = "verdict.json"
METRICS = "metrics.parquet"
# metrics.parquet's writer options (the Guard's and a bulk audit's): each step repeats once
# per metric, so delta-packed the step column takes a third of the time and 1/100 the bytes
# of plain + snappy; min/max statistics are kept for it alone (the others' cost a quarter
# of the write)
METRICS_OPTIONS: dict[str, Any] = {
    "use_dictionary": ["point", "name"],
    "store_schema": False,
    "column_encoding": {"step": "DELTA_BINARY_PACKED"},
    "write_statistics": ["step"],
}
GENESIS = "0" * 64  # the chain value before a log's first line
CHAIN = re.compile(r', "chain": "([0-9a-f]{64})"\}$')


PLAIN = frozenset({str, int, bool, type(None)})  # JSON-safe leaves, as they are


def jsonable(value: Any) -> Any:
    """Make floats JSON-safe (NaN/inf become strings) and containers plain."""
    if type(value) in PLAIN:  # the common leaves first, without an ABC isinstance check
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class RunDirError(TraingateError):
    """The run dir or one of its files cannot be read: a usage error (exit 2), not a failed run."""


class EvidenceLog:
    """Append-only JSON-lines event log, one flushed line per event, hash-chained.

    Each line ends with ``"chain"``: the sha256 of the previous line's chain and this line's
    text without it (:func:`chain_hash`), so an edited, dropped or reordered line breaks
    every chain after it; the verdict records the last one. Opening a log that a crash left
    with a torn (unterminated) last line cuts that line off and writes a ``repaired`` event
    saying how many bytes went, so the appended events stay readable and chained.
    """

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / EVIDENCE
        self.head = GENESIS
        removed = 0
        if self.path.is_file():
            removed = cut_torn_tail(self.path)
            self.head = last_chain(self.path)
        self._fh: TextIO | None = self.path.open("a", encoding="utf-8")
        if removed:
            self.write("repaired", bytes_removed=removed, reason="torn last line (a crash)")

    def write(self, event: str, **fields: Any) -> None:
        """Append one event (``time`` and ``chain`` added) and flush it."""
        if self._fh is None:
            return
        body = json.dumps({"event": event, "time": now(), **jsonable(fields)})
        self.write_bodies((body,))

    def write_bodies(self, bodies: Iterable[str]) -> None:
        """Append events already serialised as :meth:`write` serialises them (each the JSON
        text of ``{"event", "time", **fields}``), chained in order, in one write and flush:
        a bulk replay's many summaries cost one system call, not one each."""
        if self._fh is None:
            return
        head, lines = self.head, []
        for body in bodies:
            head = chain_hash(head, body)
            lines.append(f'{body[:-1]}, "chain": "{head}"}}\n')
        self.head = head
        self._fh.write("".join(lines))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def now() -> float:
    """An event's ``time``: the epoch seconds, to the millisecond."""
    return round(time.time(), 3)


def chain_hash(previous: str, body: str) -> str:
    """The chain value of a line: sha256 of the previous line's chain, a newline, and the
    line's JSON text without its own ``chain`` field."""
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last complete line; the number of bytes removed."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("rb+") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep


def last_chain(path: Path) -> str:
    """The ``chain`` of the last line of a log (GENESIS for an empty or unchained one)."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - (1 << 16)))
        lines = fh.read().rstrip(b"\n").rsplit(b"\n", 1)
    match = CHAIN.search(lines[-1].decode("utf-8", errors="replace"))
    return match.group(1) if match else GENESIS


@dataclass
class Chained:
    """An evidence log as read back: its events, the chain's head, and every line whose
    chain does not verify (``broken``: ``path:line: why``) or that was torn off the end."""

    events: list[dict[str, Any]]
    head: str
    broken: list[str]
    torn: bool


def read_chained(path: Path) -> Chained:
    """Read and verify an evidence log; a corrupt line other than the last raises
    RunDirError (naming ``path:line``), a torn last line is reported in ``torn``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    lines = text.split("\n")
    events: list[dict[str, Any]] = []
    broken: list[str] = []
    head, torn = GENESIS, False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # only the unterminated tail can be torn by a crash
                torn = True
                break
            raise RunDirError(f"{path}:{number}: corrupt evidence line") from None
        match = CHAIN.search(line)
        if match is None:
            broken.append(f"{path}:{number}: no hash chain")
        else:
            expected = chain_hash(head, line[: match.start()] + "}")
            if match.group(1) != expected:
                broken.append(f"{path}:{number}: hash chain broken (edited, dropped or reordered)")
            head = match.group(1)
        events.append(event)
    return Chained(events, head, broken, torn)


def read_evidence(path: Path) -> Iterator[dict[str, Any]]:
    """Events from an evidence log; a torn (partial) last line is skipped, not an error."""
    yield from read_chained(path).events


def require_parquet() -> None:
    """Fail now, not at the end of a run, when ``metrics.parquet`` could not be written."""
    import importlib.util

    try:
        found = importlib.util.find_spec("pyarrow") is not None
    except ModuleNotFoundError:  # an import hook that hides it
        found = False
    if not found:
        raise ModuleNotFoundError(
            "pyarrow is not installed: a Guard with a run_dir writes metrics.parquet; "
            "pip install 'traingate[audit]' (or [torch])",
            name="pyarrow",
        )


@cache
def component_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The metric names loss components are recorded under (``component/<name>``), made
    once per set of names rather than at every step."""
    return tuple(f"component/{n}" for n in names)


class MetricsBuffer:
    """Scalars the Guard saw, in long form (point, step, epoch, name, value).

    :meth:`add` keeps each batch as given (one append per evaluation point, not five per
    value); the columns are laid out the first time one is read."""

    def __init__(self) -> None:
        self._columns: tuple[list[Any], ...] = ([], [], [], [], [])
        self._batches: list[tuple[str, int | None, int | None, Mapping[str, float]]] = []
        self._rows = 0

    def add(
        self, point: str, step: int | None, epoch: int | None, values: Mapping[str, float]
    ) -> None:
        """Keep ``values`` (a mapping the caller no longer changes) as rows at this point."""
        self._batches.append((point, step, epoch, values))
        self._rows += len(values)

    def _laid_out(self) -> tuple[list[Any], ...]:
        """The columns, with every batch added since they were last read appended."""
        if self._batches:
            point, step, epoch, name, value = self._columns
            for at, s, e, values in self._batches:
                for n, v in values.items():
                    point.append(at)
                    step.append(s)
                    epoch.append(e)
                    name.append(n)
                    value.append(float(v))
            self._batches.clear()
        return self._columns

    point = property(lambda self: self._laid_out()[0], doc="each row's point")
    step = property(lambda self: self._laid_out()[1], doc="each row's step")
    epoch = property(lambda self: self._laid_out()[2], doc="each row's epoch")
    name = property(lambda self: self._laid_out()[3], doc="each row's metric name")
    value = property(lambda self: self._laid_out()[4], doc="each row's value")

    def __len__(self) -> int:
        return self._rows

    @classmethod
    def read(cls, run_dir: Path, rows: int) -> MetricsBuffer:
        """The first ``rows`` rows of ``metrics.parquet`` (what a checkpoint recorded);
        RunDirError when the file is missing or shorter."""
        import pyarrow.parquet as pq

        path = run_dir / METRICS
        try:
            table = pq.read_table(path).slice(0, rows).to_pydict()
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path}: cannot restore a checkpoint's metrics ({exc})") from None
        if len(table["value"]) < rows:
            raise RunDirError(f"{path}: holds {len(table['value'])} rows, the checkpoint {rows}")
        buffer = cls()
        columns = ("point", "step", "epoch", "name", "value")
        buffer._columns = tuple(table[c] for c in columns)
        buffer._rows = rows
        return buffer

    def write(self, run_dir: Path) -> Path:
        """Write ``metrics.parquet`` atomically (pyarrow is imported here only)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "point": pa.array(self.point, pa.string()),
                "step": pa.array(self.step, pa.int64()),
                "epoch": pa.array(self.epoch, pa.int64()),
                "name": pa.array(self.name, pa.string()),
                "value": pa.array(self.value, pa.float64()),
            }
        )
        path = run_dir / METRICS
        atomic_write(path, lambda fh: pq.write_table(table, fh, **METRICS_OPTIONS))
        return path
