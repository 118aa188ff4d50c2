"""Every ``console`` block of the README, run as written: each ``$ trainer …`` and
``$ contracts …`` command exits as the block says (``$ echo $?``; 0 when it does not say) and
prints every line the block quotes (``…`` stands for lines left out; ``~`` for the home
folder). A README excerpt that drifts from what the tools print fails here."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import REPO, TrainerProcess

BLOCKS = re.compile(r"^( *)```console\n(.*?)^\1```", re.S | re.M)
MODULES = {"trainer": "traingate_cli.trainer_cmd", "contracts": "traingate_cli.contracts_cmd"}


@dataclass
class Documented:
    """One documented command: its argv, the lines it is quoted printing, its exit status."""

    argv: list[str]
    quoted: list[str] = field(default_factory=list)
    status: int = 0


def documented() -> list[Documented]:
    runs: list[Documented] = []
    for indent, body in BLOCKS.findall((REPO / "README.md").read_text(encoding="utf-8")):
        for line in body.splitlines():
            line = line.removeprefix(indent)
            if line.startswith("$ echo $?"):
                continue
            if line.startswith("$ "):
                runs.append(Documented(shlex.split(line[2:])))
            elif re.fullmatch(r"\d+", line):
                runs[-1].status = int(line)
            elif line.strip() and line != "…":
                runs[-1].quoted.append(line)
    return runs


RUNS = documented()


def test_the_readme_documents_commands() -> None:
    assert [r.argv[:2] for r in RUNS].count(["trainer", "pretrain"]) >= 3
    assert any(r.argv[0] == "contracts" for r in RUNS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "run", RUNS, ids=[" ".join(r.argv[:3]) + f" #{i}" for i, r in enumerate(RUNS)]
)
def test_a_documented_command_prints_what_the_readme_quotes(
    tmp_path: Path, trainer_process: TrainerProcess, run: Documented
) -> None:
    argv = list(run.argv)
    if "--out" in argv:  # the README's run dir, in a temp dir
        at = argv.index("--out") + 1
        argv[at] = str(tmp_path / Path(argv[at]).name)
    command = [sys.executable, "-m", MODULES[argv[0]], *argv[1:]]
    done = trainer_process.run(command, timeout=240)
    assert done.returncode == run.status, done.stderr[-2000:]
    home, out = str(Path.home()), str(tmp_path)
    printed = [
        line.replace(out, "/tmp").replace(home, "~")
        for line in (done.stdout + done.stderr).splitlines()
    ]
    for line in run.quoted:  # a run dir in /tmp/X is the test's tmp_path/X
        assert line in printed, f"README quotes {line!r}; it printed:\n" + "\n".join(printed)
