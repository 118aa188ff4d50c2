"""Run-directory evidence: an append-only event log, the final verdict, the metrics seen.

``evidence.jsonl`` is flushed per event so a crash loses at most the line being written;
readers skip a torn last line. ``verdict.json`` is written atomically at close.
``metrics.parquet`` (pyarrow, imported only when written) holds every scalar the Guard saw.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

EVIDENCE = "evidence.jsonl"
VERDICT = "verdict.json"
METRICS = "metrics.parquet"


def jsonable(value: Any) -> Any:
    """Make floats JSON-safe (NaN/inf become strings) and containers plain."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file, fsync and rename: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EvidenceLog:
    """Append-only JSON-lines event log, one flushed line per event."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / EVIDENCE
        self._fh: TextIO | None = self.path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        if self._fh is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **jsonable(fields)}
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def read_evidence(path: Path) -> Iterator[dict[str, Any]]:
    """Events from an evidence log; a torn (partial) last line is skipped, not an error."""
    with path.open(encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # only the unterminated tail can be torn by a crash
                return
            raise ValueError(f"{path}:{number}: corrupt evidence line") from None


def write_verdict(run_dir: Path, verdict: Mapping[str, Any]) -> Path:
    path = run_dir / VERDICT
    atomic_write_text(path, json.dumps(jsonable(verdict), indent=2) + "\n")
    return path


def read_verdict(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / VERDICT).read_text(encoding="utf-8"))


class MetricsBuffer:
    """Scalars the Guard saw, in long form (point, step, epoch, name, value)."""

    def __init__(self) -> None:
        self.point: list[str] = []
        self.step: list[int | None] = []
        self.epoch: list[int | None] = []
        self.name: list[str] = []
        self.value: list[float] = []

    def add(
        self, point: str, step: int | None, epoch: int | None, values: Mapping[str, float]
    ) -> None:
        for name, value in values.items():
            self.point.append(point)
            self.step.append(step)
            self.epoch.append(epoch)
            self.name.append(name)
            self.value.append(float(value))

    def __len__(self) -> int:
        return len(self.value)

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
        fd, tmp = tempfile.mkstemp(prefix=f".{METRICS}.", dir=run_dir)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path
