"""Long-lived worker processes for :mod:`.inprocess`, fed from one queue by one thread each.

A worker is ``python -m traingate.ci.mutants.inprocess`` talking pickles over two pipes of
its own (not its stdout: a falsifier may print). A worker that dies or stops answering is
killed and replaced; the job it held reads as an ``error``, which the caller re-runs in a
fresh process.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from traingate.ci.mutants import PACKAGE_PARENT
from traingate.ci.mutants.inprocess import TIMEOUT_S

ANSWER_S = TIMEOUT_S + 60  # a worker silent this long is killed (its own alarm has failed)
RESTARTS = 2  # per thread; past them the thread stops and its jobs stay undecided


class WorkerGone(Exception):
    """The worker process died or stopped answering."""


class WorkerProcess:
    """One ``inprocess`` worker: send it a job, read its answer."""

    def __init__(self, scratch: Path) -> None:
        job_read, job_write = os.pipe()
        answer_read, answer_write = os.pipe()
        path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p)
        self.log = scratch / f"worker-{job_read}-{os.getpid()}.log"
        cmd = [sys.executable, "-m", "traingate.ci.mutants.inprocess"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*cmd, str(job_read), str(answer_write), str(scratch)],
                pass_fds=(job_read, answer_write),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=scratch,
                env={**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        os.close(job_read)
        os.close(answer_write)
        self.jobs = os.fdopen(job_write, "wb")
        self.answers = os.fdopen(answer_read, "rb")

    def call(self, job: tuple[Any, ...]) -> Any:
        """Send one job and wait for its answer (:class:`WorkerGone` if none comes)."""
        try:
            pickle.dump(job, self.jobs)
            self.jobs.flush()
            ready, _, _ = select.select([self.answers], [], [], ANSWER_S)
            if not ready:
                raise WorkerGone(f"no answer in {ANSWER_S} s")
            return pickle.load(self.answers)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise WorkerGone(f"{type(exc).__name__}: {exc}; {self.log_tail()}") from exc

    def log_tail(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:]) or "no output"

    def close(self) -> None:
        """Ask it to stop (an empty job); kill it if it does not."""
        try:
            pickle.dump(None, self.jobs)
            self.jobs.flush()
            self.jobs.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.answers.close()


def run_jobs(
    jobs: Iterable[tuple[Any, ...]],
    workers: int,
    scratch: Path,
    on_gone: Callable[[tuple[Any, ...], str], Any],
) -> list[Any]:
    """Each job's answer, in order, from ``workers`` worker processes; ``on_gone(job, why)``
    answers for a job whose worker died (or that no worker was left to run)."""
    todo = list(jobs)
    answers: list[Any] = [None] * len(todo)
    done = [False] * len(todo)
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(todo)):
        pending.put(i)

    def serve() -> None:
        worker: WorkerProcess | None = None
        restarts = 0
        try:
            while True:
                try:
                    i = pending.get_nowait()
                except queue.Empty:
                    return
                if worker is None:
                    worker = WorkerProcess(scratch)
                try:
                    answers[i] = worker.call(todo[i])
                except WorkerGone as gone:
                    answers[i] = on_gone(todo[i], str(gone))
                    worker.proc.kill()
                    worker.close()
                    worker, restarts = None, restarts + 1
                    if restarts > RESTARTS:
                        done[i] = True
                        return
                done[i] = True
        finally:
            if worker is not None:
                worker.close()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, job in enumerate(todo):
        if not done[i]:
            answers[i] = on_gone(job, "no worker left to run it")
    return answers
