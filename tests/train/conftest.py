"""Shared fixtures of the trainer tests: a small real corpus and one torch thread."""

from __future__ import annotations

import ast
import os
import random
import string
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
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
def many_words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1 MB .txt of 2,000 documents over 30,000 seeded random words: enough distinct text
    for a BPE to learn a 50,257-id vocabulary (the stdlib sample supports ~7,000)."""
    rng = random.Random(3)
    letters = string.ascii_lowercase
    words = ["".join(rng.choices(letters, k=rng.randint(5, 9))) for _ in range(30_000)]
    docs = [" ".join(rng.choices(words, k=60)) for _ in range(2_000)]
    path = tmp_path_factory.mktemp("many_words") / "words.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: bitwise-repeatable CPU math, and far faster on a loaded 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class TrainerProcess:
    """How a test runs ``trainer pretrain`` in a subprocess: this checkout's sources on the
    path and one OpenMP thread (``env``), and the command line's tail (``argv``)."""

    env: dict[str, str]

    def argv(self, data: Path, out: Path, max_steps: int, *flags: str) -> list[str]:
        """``-m traingate_cli.trainer_cmd pretrain`` from scratch over ``data`` into ``out``
        for ``max_steps`` steps, plus ``flags``."""
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

    def run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in this environment to its end, capturing its text output."""
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture
def trainer_process() -> TrainerProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "cli")])
    env["OMP_NUM_THREADS"] = "1"
    return TrainerProcess(env)
