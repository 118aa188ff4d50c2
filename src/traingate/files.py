"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

The one writer every run-dir file goes through (verdict, metrics, config, checkpoints,
exports): temp file in the same folder, flush + fsync, ``os.replace``, fsync of the folder
so the rename itself survives a host crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes, all or nothing.

    On any error the temp file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write` of a bytes value."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write` of a text value, UTF-8 encoded."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(directory: str | Path) -> None:
    """Flush a folder's entries (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
