"""Shared fixtures of the trainer tests: a small real corpus and one torch thread."""

from __future__ import annotations

import ast
import os
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
STDLIB_MODULES = ("argparse", "textwrap", "string", "json", "pathlib", "functools", "csv")


def stdlib_docstrings(modules: tuple[str, ...] = STDLIB_MODULES) -> list[str]:
    """Whitespace-normalised docstrings of a few stdlib modules, read with ``ast``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for name in modules:
        path = root / f"{name}.py"
        if not path.is_file():
            path = root / name / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(" ".join(doc.split()))
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same documents as a blank-line separated .txt file and as a parquet shard."""
    docs = stdlib_docstrings()
    root = tmp_path_factory.mktemp("corpus")
    txt = root / "docs.txt"
    txt.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    parquet = root / "docs.parquet"
    pq.write_table(pa.table({"text": docs}), parquet)
    return {"txt": txt, "parquet": parquet}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: bitwise-repeatable CPU math, and far faster on a loaded 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def trainer_env() -> dict[str, str]:
    """The environment of a ``python -m traingate_cli.trainer_cmd`` subprocess: this checkout's
    sources on the path, one OpenMP thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "cli")])
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def pretrain_argv() -> Callable[..., list[str]]:
    """``-m traingate_cli.trainer_cmd pretrain`` from scratch over ``data`` into ``out`` for
    ``max_steps`` steps, plus ``flags``: the tail of a subprocess's command line."""

    def argv(data: Path, out: Path, max_steps: int, *flags: str) -> list[str]:
        head = ["-m", "traingate_cli.trainer_cmd", "pretrain", "--mode", "from-scratch"]
        return [
            *head,
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-steps",
            str(max_steps),
            *flags,
        ]

    return argv
