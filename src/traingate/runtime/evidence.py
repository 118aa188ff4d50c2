"""Run-directory evidence: an append-only event log, the final verdict, the metrics seen.

``evidence.jsonl`` is flushed per event so a crash loses at most the line being written;
readers skip a torn last line. ``verdict.json`` (:mod:`traingate.runtime.verdict`) is
written atomically at close.
``metrics.parquet`` (pyarrow, imported only when written) holds every scalar the Guard saw.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from traingate.errors import TraingateError
from traingate.files import atomic_write

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


class RunDirError(TraingateError):
    """The run dir or one of its files cannot be read: a usage error (exit 2), not a failed run."""


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
        atomic_write(path, lambda fh: pq.write_table(table, fh))
        return path
