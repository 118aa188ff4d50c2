"""The README's GitHub Actions recipe installs what it runs and spells every command right.

Issue 10: the old recipe ran ``pip install traingate`` (no torch, no pytest) and then
``trainer`` and ``contracts verify``; it could not work as written.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest
import yaml
from traingate_cli.contracts_cmd import cli as contracts_cli
from traingate_cli.trainer_cmd import cli as trainer_cli

REPO = Path(__file__).resolve().parents[2]
GROUPS: dict[str, click.Group] = {"contracts": contracts_cli, "trainer": trainer_cli}
# what each command needs beyond the base install: extra → packages it must list
NEEDS = {"trainer": ("train", ("torch", "tokenizers", "onnxruntime", "pyarrow"))}
NEEDS_VERIFY = ("verify", ("pytest", "hypothesis"))


def recipe_steps() -> list[str]:
    """The ``run:`` lines of the README's GitHub Actions workflow, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"GitHub Actions \(.*?```yaml\n(.*?)```", text, re.S)
    assert block, "the README has no GitHub Actions workflow block"
    workflow = yaml.safe_load(block.group(1))
    (job,) = workflow["jobs"].values()
    return [step["run"] for step in job["steps"] if "run" in step]


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["optional-dependencies"]


def installed_extras(steps: list[str]) -> set[str]:
    """The extras the recipe's ``pip install "traingate[...]"`` steps install."""
    found: set[str] = set()
    for line in steps:
        match = re.search(r"traingate\[([a-z,]+)\]", line)
        if line.startswith("pip install") and match:
            found |= set(match.group(1).split(","))
    return found


def test_the_cpu_torch_wheel_comes_before_the_package() -> None:
    steps = recipe_steps()
    pips = [s for s in steps if s.startswith("pip install")]
    assert "--index-url https://download.pytorch.org/whl/cpu" in pips[0] and "torch" in pips[0]
    assert any("traingate[" in s for s in pips[1:])


def test_each_command_has_its_extra_installed() -> None:
    steps = recipe_steps()
    have, table = installed_extras(steps), extras()
    for line in steps:
        argv = shlex.split(line)
        needs = [NEEDS[argv[0]]] if argv[0] in NEEDS else []
        if argv[:2] == ["contracts", "verify"]:
            needs.append(NEEDS_VERIFY)
        for extra, packages in needs:
            assert extra in have, f"`{line}` needs traingate[{extra}]"
            listed = {re.split(r"[<>=\[ ]", req)[0] for req in table[extra]}
            assert set(packages) <= listed, f"traingate[{extra}] lacks {set(packages) - listed}"


@pytest.mark.parametrize("line", [s for s in recipe_steps() if s.split()[0] in GROUPS])
def test_every_command_and_option_exists(line: str) -> None:
    prog, name, *args = shlex.split(line)
    group = GROUPS[prog]
    command = group.get_command(click.Context(group), name)
    assert command is not None, f"{prog} has no command {name!r}"
    params = {opt for p in command.params for opt in [*p.opts, *getattr(p, "secondary_opts", [])]}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in params, f"{prog} {name} has no option {arg}"
    with click.Context(command) as ctx:  # parses: wrong choices or arity fail here
        command.parse_args(ctx, list(args))
