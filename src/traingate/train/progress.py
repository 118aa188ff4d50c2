"""What a run shows while it trains, and how it is stopped cleanly.

:class:`Progress` draws a one-line bar on a terminal (loss, lr, tokens/s, gates) and logs a
line every tenth of the run otherwise; :func:`stop_on_signals` turns SIGINT/SIGTERM into a
flag the loop reads, so it saves a checkpoint and leaves instead of dying mid-step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from traingate.runtime.guard import Guard

log = logging.getLogger("traingate.train")

BAR_WIDTH = 24


class Progress:
    """A one-line progress bar on a terminal (loss, lr, tokens/s, gates); quiet otherwise."""

    def __init__(self, max_steps: int, live: bool, rank: int) -> None:
        self.live = live and rank == 0
        self.rank = rank
        self.max_steps = max_steps
        self.every = max(1, max_steps // 10)

    def update(self, step: int, loss: float, lr: float, tps: float, guard: Guard) -> None:
        """Redraw the bar (terminal), or log every tenth of the run (rank 0)."""
        if not self.live:
            if self.rank == 0 and step % self.every == 0:
                log.info(
                    "step %d/%d loss %.4f lr %.2e %.0f tok/s", step, self.max_steps, loss, lr, tps
                )
            return
        states = [t.status for t in guard.tracked]
        gates = f"{states.count('pass')} pass · {states.count('not_evaluated')} pending"
        done = int(BAR_WIDTH * step / self.max_steps)
        bar = "█" * done + "·" * (BAR_WIDTH - done)
        sys.stderr.write(
            f"\r{bar} {step}/{self.max_steps} loss {loss:.4f} lr {lr:.2e} "
            f"{tps:,.0f} tok/s | gates {gates}   "
        )
        sys.stderr.flush()

    def note(self, text: str) -> None:
        """Log ``text`` on rank 0, clearing the bar first."""
        if self.rank != 0:
            return
        if self.live:
            sys.stderr.write("\r" + " " * 100 + "\r")
        log.info(text)

    def close(self) -> None:
        """End the bar's line."""
        if self.live:
            sys.stderr.write("\n")


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and leaves cleanly."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def reason(self, step: int) -> str:
        """What the verdict records: ``interrupted by signal 15 (SIGTERM) at step 12``."""
        name = signal.Signals(self.signum).name if self.signum else "?"
        return f"interrupted by signal {self.signum} ({name}) at step {step}"


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``flag`` for the duration (main thread only: signals need it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
