"""What the step-time benchmarks share: the invariants they gate with, their round options
and the summary lines they print, so their outputs compare."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from traingate.contract.regime import FromScratch
from traingate.contract.shipped import shipped_contracts
from traingate.runtime.guard import Guard


def step_invariants(regime: FromScratch) -> list[str]:
    """Ids of every shipped step-level invariant that applies to ``regime``."""
    return [
        inv.id
        for contract in shipped_contracts()
        for inv in contract.invariants
        if inv.at == "step" and regime.kind in inv.regimes
    ]


def timed_guard_step(guard: Guard, into: list[float], step: int, **observations: Any) -> None:
    """``guard.step(step, **observations)``, its host wall time appended to ``into``."""
    start = time.perf_counter()
    guard.step(step, **observations)
    into.append(time.perf_counter() - start)


def add_round_options(parser: argparse.ArgumentParser, steps: int, rounds: int) -> None:
    """``--steps`` per round and ``--rounds`` of each variant, interleaved."""
    parser.add_argument("--steps", type=int, default=steps, help="steps per round")
    parser.add_argument("--rounds", type=int, default=rounds, help="rounds of each variant")


def print_step_times(variants: list[tuple[str, list[float]]]) -> None:
    """One line per variant: the median step time and its quartiles, in milliseconds."""
    width = max(len(name) for name, _ in variants)
    for name, samples in variants:
        q1, median, q3 = statistics.quantiles(samples, n=4)
        print(
            f"step time {name:<{width}}: median {median * 1e3:.3f} ms "
            f"(quartiles {q1 * 1e3:.3f} - {q3 * 1e3:.3f} ms, {len(samples)} samples)"
        )
