"""Packaging seen from a user: the extras, a missing extra, ``--version``, ``python -m traingate``.

- ``pyproject.toml`` declares the ``hf``, ``lightning`` and ``trackers`` extras, and each
  covers every third-party package its integration module imports (read with ``ast``);
- ``trainer`` without a ``traingate[train]`` package exits 2 with one line naming the module
  and the extra, no traceback (a missing module of traingate's own still surfaces as a bug);
- an integration module whose framework is missing says which extra to install;
- both CLIs answer ``--version``; ``python -m traingate`` is ``contracts``, torch-free.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
INTEGRATIONS = REPO / "src" / "traingate" / "integrations"
HEAVY = ("torch", "numpy", "pyarrow")
MISSING_TRAIN_EXTRA = re.compile(
    r"^trainer: error: (\S+) is not installed; (pretrain|export) needs the 'train' extra: "
    r"pip install 'traingate\[train\]'$"
)
# Packages a module needs beyond the ones it names in an import statement.
IMPLIED = {
    "torch.utils.tensorboard": {"tensorboard"},  # SummaryWriter imports tensorboard
    "transformers": {"accelerate"},  # the Trainer (and its accelerator) needs accelerate
}


def not_installed(module: str) -> str:
    """Code that makes ``import module`` (and its submodules) fail as if it were not installed."""
    return (
        "import sys\n"
        "class NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r} or name.startswith({module + '.'!r}):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
    )


def python(code: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+(\[[^\]]*\])?", req)
    assert match, req
    return match[0]


def extra_packages(extra: str) -> set[str]:
    """Every distribution ``pip install 'traingate[extra]'`` asks for (self-references too)."""
    names: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"][extra]:
        name = requirement_name(req)
        if name.startswith("traingate["):
            for inner in name[len("traingate[") : -1].split(","):
                names |= extra_packages(inner.strip())
        else:
            names.add(normalize(name))
    return names


def distributions(module: str) -> set[str]:
    """The distributions that install ``module`` (its own name when none is installed)."""
    top = module.split(".")[0]
    found = importlib.metadata.packages_distributions().get(top) or [top]
    return {normalize(d) for d in found}


def third_party_imports(path: Path) -> set[str]:
    """Every module the file imports (anywhere in it) that is neither stdlib nor traingate,
    including those of the ``traingate.integrations`` helpers it imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if module.startswith("traingate.integrations."):
                found |= third_party_imports(INTEGRATIONS / f"{module.split('.')[2]}.py")
            elif top not in sys.stdlib_module_names and top not in ("traingate", "__future__"):
                found.add(module)
    return found


# the extras


@pytest.mark.parametrize(
    ("extra", "required"),
    [
        ("hf", {"torch", "transformers", "accelerate"}),
        ("lightning", {"torch", "lightning"}),
        ("trackers", {"tensorboard", "mlflow-skinny", "wandb"}),
    ],
)
def test_the_integration_extras_are_declared(extra: str, required: set[str]) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extra in extras, sorted(extras)
    assert required <= extra_packages(extra), extra_packages(extra)
    for req in extras[extra]:  # ranges stay loose: the pins live in requirements-dev.txt
        assert "==" not in req and "<" not in req, req


@pytest.mark.parametrize(
    ("module", "extra"),
    [("huggingface", "hf"), ("lightning", "lightning"), ("trackers", "trackers")],
)
def test_each_integration_module_imports_only_what_its_extra_installs(
    module: str, extra: str
) -> None:
    imported = third_party_imports(INTEGRATIONS / f"{module}.py")
    assert imported, f"{module}.py imports no framework: the scan is broken"
    covered = extra_packages(extra) | {
        normalize(requirement_name(r)) for r in PYPROJECT["project"]["dependencies"]
    }
    uncovered = {}
    for name in sorted(imported):
        needs = [distributions(name), *({p} for p in IMPLIED.get(name, ()))]
        if missing := [sorted(n) for n in needs if not n & covered]:
            uncovered[name] = missing
    assert not uncovered, f"traingate[{extra}] lacks what {module}.py imports: {uncovered}"


def test_the_dev_extra_installs_the_integrations_it_tests() -> None:
    for extra in ("train", "verify", "hf", "lightning", "trackers"):
        assert extra_packages(extra) <= extra_packages("dev"), extra


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [("huggingface", "transformers", "hf"), ("lightning", "lightning", "lightning")],
)
def test_an_integration_without_its_framework_names_the_extra(
    module: str, framework: str, extra: str
) -> None:
    code = not_installed(framework) + (
        "try:\n"
        f"    import traingate.integrations.{module}\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name, '|', exc)\n"
    )
    out = python(code)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(f"ModuleNotFoundError {framework} | "), line
    assert f"pip install 'traingate[{extra}]'" in line


# trainer without the train extra


def trainer(blocked: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``trainer ARGV`` in a process where importing ``blocked`` fails as if not installed."""
    code = not_installed(blocked) + (
        "from traingate_cli.trainer_cmd import main\n"
        "sys.argv = ['trainer', *sys.argv[1:]]\n"
        "main()\n"
    )
    return python(code, *argv)


@pytest.mark.parametrize("command", ["pretrain", "export"])
def test_trainer_without_torch_exits_2_naming_the_train_extra(tmp_path: Path, command: str) -> None:
    out = tmp_path / "run"
    argv = ["pretrain", "--mode", "finetune", "--out", str(out)]
    result = trainer("torch", *(argv if command == "pretrain" else ["export", str(out)]))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    match = MISSING_TRAIN_EXTRA.match(lines[0])
    assert match, lines[0]
    assert match.groups() == ("torch", command)
    assert not out.exists()


@pytest.mark.slow
def test_pretrain_checks_the_export_packages_before_training(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = trainer("onnxruntime", "pretrain", "--mode", "finetune", "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    match = MISSING_TRAIN_EXTRA.match(line)
    assert match and match.groups() == ("onnxruntime", "pretrain"), line
    assert not out.exists()  # refused before any step ran


def test_a_missing_traingate_module_is_a_bug_not_a_missing_extra(tmp_path: Path) -> None:
    argv = ("pretrain", "--mode", "finetune", "--out", str(tmp_path / "run"))
    result = trainer("traingate.train.pretrain", *argv)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    assert "traingate[train]" not in result.stderr


# --version


@pytest.mark.parametrize("prog", ["trainer", "contracts"])
def test_both_clis_print_their_version(prog: str) -> None:
    module = "trainer_cmd" if prog == "trainer" else "contracts_cmd"
    result = python(f"from traingate_cli.{module} import main\nmain()", "--version")
    assert result.returncode == 0, result.stderr
    version = PYPROJECT["project"]["version"]
    assert result.stdout.strip() == f"{prog}, version {version}"


# python -m traingate


def test_python_m_traingate_validates_the_shipped_contracts(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "traingate", "validate"]
    with_path = subprocess.run(
        [*cmd, str(REPO / "contracts")], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert with_path.returncode == 0, with_path.stdout + with_path.stderr
    assert re.search(r"^\d+ contracts · .* · 0 errors · 0 warnings$", with_path.stdout, re.M)
    # no ./contracts in tmp_path: the shipped contracts (inside the package) are validated
    default = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert default.returncode == 0, default.stdout + default.stderr
    assert default.stdout.splitlines()[-1] == with_path.stdout.splitlines()[-1]


@pytest.mark.parametrize("argv", [["--help"], ["validate", "contracts"]], ids=["help", "validate"])
def test_python_m_traingate_runs_contracts_without_torch(argv: list[str]) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['traingate', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('traingate', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "[]", lines
    if argv == ["--help"]:
        assert lines[0] == "Usage: python -m traingate [OPTIONS] COMMAND [ARGS]..."
        assert "validate" in result.stdout and "verify" in result.stdout


# audit and the Guard's run dir without pyarrow


def test_audit_without_pyarrow_exits_2_naming_the_audit_extra(tmp_path: Path) -> None:
    log = tmp_path / "m.csv"
    log.write_text("step,loss\n0,3.9\n1,nan\n", encoding="utf-8")
    out = tmp_path / "run"
    code = not_installed("pyarrow") + (
        "from traingate_cli.contracts_cmd import main\n"
        "sys.argv = ['contracts', *sys.argv[1:]]\n"
        "main()\n"
    )
    argv = [str(log), "--regime", "finetune", "--map", "step", "--map", "loss", "--out", str(out)]
    result = python(code, "audit", *argv, "--only", "INV-TRAIN-001")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "contracts audit: error: pyarrow is not installed; audit needs the 'audit' extra: "
        "pip install 'traingate[audit]'"
    )
    assert not out.exists()  # refused before anything was written


def test_a_guard_with_a_run_dir_needs_pyarrow_at_construction_not_at_close(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = not_installed("pyarrow") + (
        "from traingate import Guard, Finetune\n"
        "try:\n"
        f"    Guard(regime=Finetune(), run_dir={str(out)!r})\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc.name, '|', exc)\n"
        "Guard(regime=Finetune())  # without a run dir nothing is written: no pyarrow needed\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    name, _, message = result.stdout.strip().partition(" | ")
    assert name == "pyarrow"
    assert "writes metrics.parquet" in message and "pip install 'traingate[audit]'" in message
    assert not out.exists()
