"""The README's seed-003 block, run as written: each command's exit status and the lines it
quotes are what the trainer really prints."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from .conftest import REPO, TrainerProcess

BLOCK = re.compile(r"### The seed-003 bug, live\n.*?```console\n(.*?)```", re.S)


def documented_runs() -> list[tuple[list[str], list[str], int]]:
    """(trainer argv, quoted output lines, exit status) of each command in the block."""
    text = BLOCK.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert text, "the README has no seed-003 console block"
    runs: list[tuple[list[str], list[str], int]] = []
    for line in text.group(1).splitlines():
        if line.startswith("$ trainer "):
            runs.append((shlex.split(line[2:])[1:], [], -1))
        elif line.startswith("$ echo $?"):
            continue
        elif re.fullmatch(r"\d+", line):
            argv, quoted, _ = runs[-1]
            runs[-1] = (argv, quoted, int(line))
        elif line != "…":
            runs[-1][1].append(line)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1], ids=["finetune-aborts", "from-scratch-passes"])
def test_the_seed_003_commands_print_what_the_readme_quotes(
    tmp_path: Path, trainer_process: TrainerProcess, index: int
) -> None:
    runs = documented_runs()
    assert len(runs) == 2
    argv, quoted, status = runs[index]
    out = argv.index("--out") + 1
    argv[out] = str(tmp_path / Path(argv[out]).name)  # the README's runs/… in a temp dir
    command = [sys.executable, "-m", "traingate_cli.trainer_cmd", *argv]
    done = trainer_process.run(command, timeout=240)
    assert done.returncode == status, done.stderr[-2000:]
    printed = (done.stdout + done.stderr).splitlines()
    for line in quoted:
        assert line in printed, f"README quotes {line!r}; the run printed:\n" + "\n".join(printed)
