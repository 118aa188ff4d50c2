"""Read a metrics log into a :class:`Table` of raw cells, its format named or detected.

Formats: CSV/TSV, JSON lines and parquet (by suffix); a TensorBoard event file or run
folder (:mod:`.tfevents`); an MLflow file-store run folder, a Hugging Face
``trainer_state.json`` and a Lightning CSVLogger ``metrics.csv`` (:mod:`.logfiles`).
JSON and parquet records are flattened: a nested ``{"components": {"a": 1}}`` becomes the
column ``components.a``. Cells stay raw: an empty CSV cell is ``""``, a JSON/parquet null
``None`` (both NaN to :mod:`.rows`); a key a JSON line leaves out is absent from its row.
"""

from __future__ import annotations

import json
from pathlib import Path

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.logfiles import (
    LIGHTNING_CSV,
    TRAINER_STATE,
    lightning_shaped,
    read_lightning,
    read_mlflow,
    read_trainer_state,
)
from traingate.ci.audit.records import Table, flatten, read_csv_text, records_table
from traingate.ci.audit.tfevents import EVENT_PREFIX, read_tfevents

__all__ = ["FORMATS", "SUFFIXES", "Table", "detect_format", "read_table"]

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FORMATS = ("csv", "tsv", "jsonl", "parquet", "tensorboard", "mlflow", "hf", "lightning")


def _lightning_header(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8-sig") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return lightning_shaped([c.strip() for c in header.strip().split(",")])


def detect_format(path: Path) -> str:
    """The format of the log at ``path``, from its name, its shape or a folder's contents."""
    if path.is_dir():
        if (path / "metrics").is_dir():
            return "mlflow"
        if (path / TRAINER_STATE).is_file():
            return "hf"
        if any(p.is_file() for p in path.rglob(f"{EVENT_PREFIX}*")):
            return "tensorboard"
        if (path / LIGHTNING_CSV).is_file():
            return "lightning"
        raise AuditError(
            f"{path}: a folder, but not an MLflow run (metrics/), a Hugging Face checkpoint "
            f"({TRAINER_STATE}), a TensorBoard run ({EVENT_PREFIX}.*) or a Lightning log "
            f"({LIGHTNING_CSV})"
        )
    if path.name.startswith(EVENT_PREFIX):
        return "tensorboard"
    if path.name == TRAINER_STATE:
        return "hf"
    if path.name == LIGHTNING_CSV and _lightning_header(path):
        return "lightning"
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise AuditError(
            f"{path}: unknown metrics format {path.suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(sorted(SUFFIXES))}, or a TensorBoard, MLflow, "
            "Hugging Face or Lightning log (or name it with --log-format)"
        )
    return fmt


def read_table(path: str | Path, fmt: str | None = None) -> Table:
    """Read a metrics log; ``fmt`` (one of :data:`FORMATS`) or its path gives the format."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if not path.exists():
        raise AuditError(f"{path}: no such file")
    if fmt not in FORMATS:
        raise AuditError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "tensorboard":
        return read_tfevents(path)
    if fmt == "mlflow":
        return read_mlflow(path)
    if fmt == "hf":
        return read_trainer_state(path)
    if fmt == "lightning":
        return read_lightning(path)
    if not path.is_file():
        raise AuditError(f"{path}: not a file (a {fmt} log is one file)")
    try:
        if fmt == "parquet":
            return _read_parquet(path)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: unreadable ({exc})") from None
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    return read_csv_text(path, text, fmt, "\t" if fmt == "tsv" else ",")


def _read_jsonl(path: Path, text: str) -> Table:
    rows: list[dict[str, object]] = []
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
        rows.append(flatten(record))
        lines.append(number)
    return records_table(path, "jsonl", rows, lines)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise AuditError(f"{path}: not a readable parquet file ({exc})") from None
    records = [flatten(r) for r in table.to_pylist()]
    return records_table(path, "parquet", records, [None] * len(records))
