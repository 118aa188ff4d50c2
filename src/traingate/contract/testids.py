"""Resolve ``path.py::test_name`` ids by parsing test files with ``ast`` (never importing).

Validation must not run user code, and must not need torch, to know whether a falsifier
named in a contract exists.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path


def split_test_id(test_id: str) -> tuple[str, tuple[str, ...]]:
    """``falsifiers/t.py::TestX::test_y[a]`` → (``falsifiers/t.py``, (``TestX``, ``test_y``))."""
    file, *names = test_id.split("::")
    if names and "[" in names[-1]:
        names[-1] = names[-1].split("[", 1)[0]
    return file, tuple(names)


@lru_cache(maxsize=256)
def _collect(path: Path, mtime_ns: int) -> frozenset[tuple[str, ...]] | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    found: set[tuple[str, ...]] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            found.add((node.name,))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(
                    item, ast.FunctionDef | ast.AsyncFunctionDef
                ) and item.name.startswith("test"):
                    found.add((node.name, item.name))
    return frozenset(found)


def problem_with_test_id(test_id: str, root: Path) -> str | None:
    """Why ``test_id`` does not resolve under ``root``, or None when it does."""
    file, names = split_test_id(test_id)
    path = root / file
    try:
        if not path.is_file():
            return f"test file `{file}` does not exist (under {root})"
        found = _collect(path.resolve(), path.stat().st_mtime_ns)
    except OSError as exc:  # e.g. a name longer than the file system allows
        return f"test file `{file}` cannot be read ({exc.strerror})"
    if found is None:
        return f"test file `{file}` cannot be parsed"
    if names not in found:
        return f"`{'::'.join(names)}` is not a test in `{file}`"
    return None


def find_root(start: Path) -> Path:
    """The project root for test ids: the nearest ancestor holding a ``falsifiers/`` folder."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "falsifiers").is_dir():
            return candidate
    return Path.cwd()
