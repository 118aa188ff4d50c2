"""The built-in offline corpus: docstrings of the installed Python standard library.

Every machine with Python has it, so ``trainer pretrain`` runs without downloading anything.
The stdlib ``.py`` files are parsed with ``ast`` (never imported); module, class and function
docstrings are cleaned, de-duplicated, put in a seeded shuffled order (so a pass does not walk
the library package by package) and cached as parquet (``text``, ``source`` columns) under
``$TRAINGATE_CACHE`` or ``~/.cache/traingate``.
"""

from __future__ import annotations

import ast
import logging
import os
import random
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from traingate.files import atomic_write

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
SHUFFLE_SEED = 1234
MIN_CHARS = 16
# Folders whose docstrings are not library prose (tests, vendored code, demos, GUIs).
SKIP_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "lib2to3",
        "turtledemo",
        "ensurepip",
        "__pycache__",
        "__phello__",
    }
)
_DocNode = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def cache_dir() -> Path:
    """``$TRAINGATE_CACHE`` if set, else ``~/.cache/traingate``."""
    env = os.environ.get("TRAINGATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "traingate"


def stdlib_dir() -> Path:
    """The installed standard library's source folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The stdlib ``.py`` files to harvest, sorted, outside ``SKIP_DIRS`` and ``config-*``."""
    root = stdlib_dir() if root is None else root
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.startswith("config-")
        )
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(files)


def _module_name(file: Path, root: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or file.stem


def clean_docstring(text: str) -> str | None:
    """Trim a (``cleandoc``-ed) docstring; None for fragments too short to be prose."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    if len(text) < MIN_CHARS or len(text.split()) < 3:
        return None
    return text


def file_docstrings(file: Path, module: str) -> Iterator[tuple[str, str]]:
    """``(source, docstring)`` for the module, classes and functions of one file (nested ones
    too); a file that does not parse yields nothing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, OSError) as exc:
        log.debug("skipping %s: %s", file, exc)
        return

    def visit(node: ast.AST, qualname: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{qualname}.{child.name}" if qualname else child.name
                yield from emit(child, f"{module}:{name}")
                yield from visit(child, name)

    def emit(node: _DocNode, source: str) -> Iterator[tuple[str, str]]:
        doc = ast.get_docstring(node, clean=True)
        cleaned = clean_docstring(doc) if doc else None
        if cleaned:
            yield source, cleaned

    yield from emit(tree, module)
    yield from visit(tree, "")


def build_corpus(
    out: Path, root: Path | None = None, max_files: int | None = None
) -> tuple[int, float]:
    """Harvest docstrings from the first ``max_files`` stdlib files (all by default) into the
    parquet file ``out`` (atomically); returns (rows, seconds)."""
    started = time.perf_counter()
    root = stdlib_dir() if root is None else root
    files = stdlib_files(root)[:max_files]
    seen: set[str] = set()
    texts: list[str] = []
    sources: list[str] = []
    for file in files:
        for source, text in file_docstrings(file, _module_name(file, root)):
            if text not in seen:
                seen.add(text)
                texts.append(text)
                sources.append(source)
    order = list(range(len(texts)))
    random.Random(SHUFFLE_SEED).shuffle(order)
    table = pa.table(
        {"text": [texts[i] for i in order], "source": [sources[i] for i in order]},
        schema=pa.schema([("text", pa.string()), ("source", pa.string())]),
    )
    atomic_write(out, lambda fh: pq.write_table(table, fh, row_group_size=4096))
    return table.num_rows, time.perf_counter() - started


def builtin_corpus_path(max_files: int | None = None) -> Path:
    """The cached stdlib-docstring parquet, built on first use and reused afterwards (a cached
    file whose footer does not read is rebuilt)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    suffix = "" if max_files is None else f"-max{max_files}"
    path = cache_dir() / f"stdlib-docstrings-py{version}-v{CORPUS_VERSION}{suffix}.parquet"
    if path.is_file():
        try:
            pq.read_metadata(path)
            return path
        except (pa.ArrowException, OSError) as exc:
            log.warning("rebuilding unreadable cached corpus %s: %s", path, exc)
    rows, seconds = build_corpus(path, max_files=max_files)
    log.info(
        "built the stdlib docstring corpus %s: %d docstrings, %.1f MB, %.1f s",
        path,
        rows,
        path.stat().st_size / 1e6,
        seconds,
    )
    return path
