"""Atomic, checksummed checkpoints, and recovery of the newest valid one.

File layout: ``MAGIC (8 bytes) | payload length (8, little-endian) | sha256 of payload (32) |
payload`` where the payload is ``torch.save`` output. A write goes through
:func:`traingate.files.atomic_write` (temp file, fsync, ``os.replace``, fsync of the folder):
a reader sees the old file or the new one, never a partial one. A
truncated or bit-flipped file fails the length/sha256 check and raises ``CheckpointError``.

Payloads are loaded with ``weights_only=True``, so they may hold tensors (model / optimizer /
scheduler state dicts, RNG states as uint8 tensors), ints, floats, bools, strings, None, and
dicts / lists / tuples of those — not numpy arrays or arbitrary objects.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
import struct
from pathlib import Path
from typing import IO, Any

import torch

from traingate.errors import TraingateError
from traingate.files import atomic_write

log = logging.getLogger(__name__)

MAGIC = b"TGCKPT01"
_HEADER = struct.Struct("<8sQ32s")
STEP_PATTERN = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointError(TraingateError):
    """A checkpoint file is truncated, corrupted, or not loadable."""


class _HashingWriter:
    """Forwards writes to a file while counting bytes and hashing them."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.length = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.length += view.nbytes
        return self._fh.write(view)

    def flush(self) -> None:
        self._fh.flush()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically, with its length and sha256 in a header."""

    def write(fh: IO[bytes]) -> None:
        fh.write(_HEADER.pack(MAGIC, 0, bytes(32)))
        body = _HashingWriter(fh)
        torch.save(payload, body)
        fh.seek(0)
        fh.write(_HEADER.pack(MAGIC, body.length, body.sha.digest()))

    atomic_write(path, write)


def load_checkpoint(path: str | Path, *, weights_only: bool = True) -> dict[str, Any]:
    """Read and verify a checkpoint; ``CheckpointError`` names the file and the defect.
    ``weights_only=False`` unpickles arbitrary objects: use it only for files you trust."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from exc
    if len(data) < _HEADER.size:
        raise CheckpointError(
            f"checkpoint {path} is truncated: {len(data)} bytes, shorter than its "
            f"{_HEADER.size}-byte header"
        )
    magic, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"checkpoint {path} is not a traingate checkpoint (bad magic)")
    body = memoryview(data)[_HEADER.size :]
    if body.nbytes != length:
        raise CheckpointError(
            f"checkpoint {path} is truncated or padded: header says {length} payload bytes, "
            f"file holds {body.nbytes}"
        )
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupted: sha256 of the payload mismatches")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=weights_only)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} could not be unpickled: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(payload).__name__}, not a payload dict"
        )
    return payload


def step_checkpoint_path(directory: str | Path, step: int) -> Path:
    """``directory/step-XXXXXXXX.pt`` for ``step`` (zero-padded so names sort by step)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return Path(directory) / f"step-{step:08d}.pt"


def list_step_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-*.pt`` file in ``directory``, newest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = STEP_PATTERN.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def save_step_checkpoint(
    directory: str | Path, step: int, payload: dict[str, Any], keep: int = 3
) -> Path:
    """Save ``payload`` as the checkpoint of ``step``, then keep only the newest ``keep``."""
    path = step_checkpoint_path(directory, step)
    save_checkpoint(path, payload)
    prune_checkpoints(directory, keep)
    return path


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest step checkpoints, and temp files a crashed write left
    behind; returns what was removed."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    directory = Path(directory)
    removed = [path for _, path in list_step_checkpoints(directory)[keep:]]
    if directory.is_dir():
        removed += [p for p in directory.glob(".step-*.pt.*.tmp") if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def latest_valid_checkpoint(
    directory: str | Path, *, weights_only: bool = True
) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint in ``directory`` that verifies and loads, with its payload;
    corrupt ones are skipped with a warning naming the file. None if there is none."""
    for _, path in list_step_checkpoints(directory):
        try:
            return path, load_checkpoint(path, weights_only=weights_only)
        except CheckpointError as exc:
            log.warning("skipping checkpoint %s: %s", path, exc)
    return None
