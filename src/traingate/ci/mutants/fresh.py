"""Running a mutant the slow, sure way: a fresh copy of the project, a fresh pytest process.

The falsifiers a mutant targets run first, then the rest of the contract's, until one fails
(killed) or all pass (survived). This is the reference the in-process path
(:mod:`.inprocess`) falls back on for every mutant it does not kill itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from traingate.ci.mutants import PACKAGE_PARENT
from traingate.ci.mutants.results import ContractEdit, Mutant

TIMEOUT_S = 300


def copy_project(root: Path, dest: Path) -> None:
    """Copy the project's ``contracts/``, ``falsifiers/`` and ``conftest.py`` into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in ("contracts", "falsifiers"):
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name, ignore=ignore)
    if (root / "conftest.py").is_file():
        shutil.copy2(root / "conftest.py", dest / "conftest.py")


def pytest_args(work: Path, stop_first: bool) -> list[str]:
    """pytest's options for a mutant's run in the copy ``work`` (either path)."""
    args = ["-q", "-p", "no:cacheprovider", "-p", "traingate.ci.mutant_plugin"]
    args += ["--rootdir", str(work), "-o", "addopts="]
    return args + (["-x"] if stop_first else [])


def run_pytest(
    work: Path, ids: list[str], env: dict[str, str], stop_first: bool
) -> tuple[int, str]:
    """Run ``ids`` in ``work`` with the mutant plugin; (exit code or -1 on timeout, output)."""
    cmd = [sys.executable, "-m", "pytest", *pytest_args(work, stop_first)]
    try:
        proc = subprocess.run(
            [*cmd, *ids],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def mutant_env(work: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment a copy's pytest runs in: this traingate importable, shipped root moved."""
    path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "TRAINGATE_SHIPPED_ROOT": str(work),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def last_line(output: str) -> str:
    """The last non-blank line of pytest's output (its summary)."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def apply_edit(mutant: Mutant, work: Path) -> dict[str, str]:
    """Write ``mutant``'s edit into the copy ``work``; the environment the plugin reads."""
    edit = mutant.edit
    if isinstance(edit, ContractEdit):
        (work / edit.file).write_text(edit.text, encoding="utf-8")
        return {}
    source = work / "_mutant_module.py"
    source.write_text(edit.source, encoding="utf-8")
    return {"TRAINGATE_MUTANT_MODULE": edit.module, "TRAINGATE_MUTANT_SOURCE": str(source)}


def run_mutant(mutant: Mutant, root: Path, tests: list[str]) -> Mutant:
    """Apply ``mutant`` in a fresh copy of ``root`` and run the falsifiers (targeted first)."""
    with tempfile.TemporaryDirectory(prefix="traingate-mutant-") as tmp:
        work = Path(tmp)
        copy_project(root, work)
        env = mutant_env(work, apply_edit(mutant, work))
        first = [t for t in mutant.targeted if t in tests]
        rest = [t for t in tests if t not in first]
        for stage in (first, rest):
            if not stage:
                continue
            code, output = run_pytest(work, stage, env, stop_first=True)
            if code in (1, 2):  # a falsifier failed (2: it failed to even collect)
                return mutant.decide("fresh", "killed", last_line(output))
            if code != 0:
                return mutant.decide("fresh", "error", f"pytest exit {code}: {last_line(output)}")
        return mutant.decide("fresh", "survived", f"{len(tests)} falsifiers all passed")


def baseline(root: Path, tests: list[str]) -> str | None:
    """None when the falsifiers pass on an unmutated copy, else why not."""
    if not tests:
        return "the contract cites no falsifiers"
    with tempfile.TemporaryDirectory(prefix="traingate-baseline-") as tmp:
        work = Path(tmp)
        copy_project(root, work)
        code, output = run_pytest(work, tests, mutant_env(work, {}), stop_first=False)
    return None if code == 0 else f"pytest exit {code}: {last_line(output)}"
