"""Running mutants fast: pytest re-run inside a long-lived worker process, mutant by mutant.

A worker (one of ``--workers`` processes) starts as a fresh pytest with the mutant plugin
would (the plugin's import pulls in the whole ``traingate`` package before any mutant is
installed), copies each project once, and then for each mutant:

1. installs it: the mutated contract text written into the worker's copy, or the mutated
   check module executed under its real name by
   :func:`~traingate.ci.mutant_plugin.install_module`, as the plugin does in a fresh process;
2. runs only the falsifiers that target it (``-x``) with ``pytest.main`` in this process,
   with the plugin's Hypothesis profile, exactly the options of the fresh path;
3. restores what it changed: the contract file, the module in ``sys.modules`` and on its
   package, the check registry (its order too), the shipped-contracts cache, ``sys.path``,
   the working directory and ``TRAINGATE_SHIPPED_ROOT``, and drops every module the run
   imported from the copy or from traingate (the falsifiers import them afresh next time,
   so they bind the next mutant, as in a fresh process); then checks that the restore held.

Only a kill is final here. Anything else (every targeted falsifier passed, an error, a
timeout, a restore that did not hold) is handed back, and the caller runs that mutant in a
fresh process the old way (:mod:`.fresh`); a worker whose restore failed trusts no later
run of its own.
"""

from __future__ import annotations

import gc
import io
import os
import pickle
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from traingate.ci.mutant_plugin import install_module
from traingate.ci.mutants.fresh import copy_project, last_line, pytest_args
from traingate.ci.mutants.results import ContractEdit, ModuleEdit, Outcome

TIMEOUT_S = 120  # an in-process run past this is handed to the fresh path (its own limit)
SHIPPED_ROOT = "TRAINGATE_SHIPPED_ROOT"


@dataclass
class Worker:
    """One worker process's state: its scratch folder, its copies, what it imported first."""

    scratch: Path
    resident: frozenset[str]  # the traingate modules a fresh pytest has before any falsifier
    copies: dict[Path, Path] = field(default_factory=dict)  # project root → this worker's copy
    tainted: str = ""  # why this worker's in-process runs are no longer trusted
    modules_seen: int = 0  # len(sys.modules) at the last freeze


WORKERS: list[Worker] = []  # this process's worker, once :func:`start` ran


def start(scratch: str) -> None:
    """Initialise this process as a worker."""
    if sys.path and sys.path[0] == os.getcwd():  # ``-m``'s entry: a fresh pytest has its copy
        del sys.path[0]
    # bytecode (pytest's rewritten falsifiers too) is cached in the scratch folder only
    sys.pycache_prefix = str(Path(scratch) / "pycache")
    sys.dont_write_bytecode = False
    for name in ("TRAINGATE_MUTANT_MODULE", "TRAINGATE_MUTANT_SOURCE"):
        os.environ.pop(name, None)  # the worker installs mutants itself
    import pytest  # noqa: F401  (imported once, for every run)

    import traingate.checks  # noqa: F401  (what the plugin imports before installing a mutant)

    resident = frozenset(m for m in sys.modules if m == "traingate" or m.startswith("traingate."))
    WORKERS[:] = [Worker(Path(tempfile.mkdtemp(prefix="worker-", dir=scratch)), resident)]


def worker() -> Worker:
    if not WORKERS:
        raise RuntimeError("traingate.ci.mutants.inprocess.start() has not run in this process")
    return WORKERS[0]


def copy_of(root: Path) -> Path:
    """This worker's copy of the project at ``root`` (made on first use)."""
    me = worker()
    root = root.resolve()
    if root not in me.copies:
        dest = Path(tempfile.mkdtemp(prefix="copy-", dir=me.scratch)).resolve()
        copy_project(root, dest)
        me.copies[root] = dest
    return me.copies[root]


class Deadline(BaseException):
    """An in-process run took longer than :data:`TIMEOUT_S`."""


@contextmanager
def deadline(seconds: float) -> Iterator[list[bool]]:
    """Interrupt the block after ``seconds`` (main thread only); the flag says it fired."""
    fired = [False]
    if threading.current_thread() is not threading.main_thread():
        yield fired
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        fired[0] = True
        raise Deadline

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clear_shipped_cache() -> None:
    """Forget the shipped contracts read so far (a contract mutant rewrites one)."""
    shipped = sys.modules.get("traingate.contract.shipped")
    if shipped is not None:
        shipped.shipped_contracts.cache_clear()


def purge(work: Path) -> None:
    """Drop the modules a run imported from the copy ``work`` or from traingate."""
    resident, inside = worker().resident, str(work) + os.sep
    for name, module in list(sys.modules.items()):
        ours = name == "traingate" or name.startswith("traingate.")
        file = str(getattr(module, "__file__", None) or "")
        if (ours and name not in resident) or file.startswith(inside):
            del sys.modules[name]


def run_here(work: Path, ids: list[str], stop_first: bool) -> tuple[int | None, str]:
    """Run ``ids`` in the copy ``work`` with ``pytest.main`` in this process; (exit code,
    or None on a timeout or an exception out of pytest, and its output)."""
    import pytest

    from traingate.ci import mutant_plugin

    # the plugin, already imported here, goes in as an object (``-p`` would warn that it
    # cannot be assertion-rewritten); every other option is the fresh path's
    args = pytest_args(work, stop_first)
    plugin_at = args.index(mutant_plugin.__name__)
    del args[plugin_at - 1 : plugin_at + 1]
    saved_path, saved_cwd, saved_root = list(sys.path), os.getcwd(), os.environ.get(SHIPPED_ROOT)
    os.environ[SHIPPED_ROOT] = str(work)
    os.chdir(work)
    sys.path.insert(0, str(work))  # as ``python -m pytest`` in the copy has it
    clear_shipped_cache()
    out = io.StringIO()
    code: int | None = None
    try:
        with redirect_stdout(out), redirect_stderr(out), deadline(TIMEOUT_S) as fired:
            code = int(pytest.main([*args, *ids], plugins=[mutant_plugin]))
        if fired[0]:
            code, note = None, f"timed out in-process after {TIMEOUT_S} s"
            out.write(f"\n{note}\n")
    except (Exception, Deadline) as exc:  # pytest itself broke: the fresh path decides
        code = None
        out.write(f"\n{type(exc).__name__}: {exc}\n")
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        if saved_root is None:
            os.environ.pop(SHIPPED_ROOT, None)
        else:
            os.environ[SHIPPED_ROOT] = saved_root
        purge(work)
        clear_shipped_cache()
        settle()
    return code, out.getvalue()


def settle() -> None:
    """After a run that imported new modules that stay (torch, say): collect, then freeze
    what is left, so pytest's garbage collections at each session's end skip it."""
    me = worker()
    if len(sys.modules) > me.modules_seen:
        gc.collect()
        gc.freeze()
        me.modules_seen = len(sys.modules)


@contextmanager
def installed(edit: ContractEdit | ModuleEdit, work: Path) -> Iterator[None]:
    """Install a mutant's edit in this process and the copy ``work``; restore it after."""
    from traingate.checks.base import REGISTRY

    if isinstance(edit, ContractEdit):
        file = work / edit.file
        original = file.read_bytes()
        file.write_text(edit.text, encoding="utf-8")
        try:
            yield
        finally:
            file.write_bytes(original)
        return
    registry = dict(REGISTRY)
    package_name, _, short = edit.module.rpartition(".")
    module = sys.modules[edit.module]
    source = work / "_mutant_module.py"
    source.write_text(edit.source, encoding="utf-8")
    try:
        install_module(edit.module, edit.source, str(source))
        yield
    finally:
        sys.modules[edit.module] = module
        package = sys.modules.get(package_name)
        if package is not None:
            setattr(package, short, module)
        REGISTRY.clear()
        REGISTRY.update(registry)
        source.unlink(missing_ok=True)


def restore_problem(edit: ContractEdit | ModuleEdit, work: Path, root: Path) -> str:
    """What did not come back after a mutant's run ('' when everything did)."""
    if isinstance(edit, ContractEdit):
        if (work / edit.file).read_bytes() != (root / edit.file).read_bytes():
            return f"{edit.file} in the worker's copy differs from the project's"
        return ""
    module: ModuleType | None = sys.modules.get(edit.module)
    if module is None or str(getattr(module, "__file__", None) or "").startswith(str(work)):
        return f"{edit.module} is still the mutant"
    from traingate.checks.base import REGISTRY

    for kind, cls in REGISTRY.items():
        if cls.__module__ == edit.module and vars(module).get(cls.__name__) is not cls:
            return f"the check registry still holds the mutant's {kind!r}"
    return ""


def run_one(edit: ContractEdit | ModuleEdit, root: Path, ids: list[str]) -> tuple[Outcome, str]:
    """Install a mutant, run the falsifiers ``ids`` here (``-x``), restore; (verdict, detail).

    ``killed`` is final; ``survived`` (every one passed) and ``error`` go to the fresh path.
    """
    me = worker()
    if me.tainted:
        return "error", f"worker not trusted: {me.tainted}"
    work = copy_of(root)
    try:
        with installed(edit, work):
            code, output = run_here(work, ids, stop_first=True)
        problem = restore_problem(edit, work, root.resolve())
    except Exception as exc:  # an edit that could not be installed or restored
        problem = f"{type(exc).__name__}: {exc}"
        code, output = None, problem
    if problem:
        me.tainted = problem
        return "error", problem
    if code in (1, 2):  # a falsifier failed (2: it failed to even collect)
        return "killed", last_line(output)
    if code == 0:
        return "survived", f"{len(ids)} targeted falsifiers passed in-process"
    return "error", f"pytest exit {code}: {last_line(output)}"


def run_baseline(root: Path, tests: list[str]) -> bool:
    """Whether the contract's falsifiers all pass unmutated, run here."""
    code, _ = run_here(copy_of(root), tests, stop_first=False)
    return code == 0


def answer(job: tuple[Any, ...]) -> Any:
    """One job: ``("baseline", root, tests)`` or ``("mutant", edit, root, ids)``."""
    if job[0] == "baseline":
        return run_baseline(*job[1:])
    if job[0] == "mutant":
        return run_one(*job[1:])
    raise ValueError(f"unknown job {job[0]!r}")


def serve(job_fd: int, answer_fd: int, scratch: str) -> None:
    """The worker's loop: read a pickled job, write its pickled answer, until ``None``."""
    start(scratch)
    with os.fdopen(job_fd, "rb") as jobs, os.fdopen(answer_fd, "wb") as answers:
        while True:
            try:
                job = pickle.load(jobs)
            except EOFError:
                return
            if job is None:
                return
            try:
                result = answer(job)
            except Exception as exc:  # reported as an error: the fresh path decides
                result = ("error", f"worker: {type(exc).__name__}: {exc}")
            pickle.dump(result, answers)
            answers.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
