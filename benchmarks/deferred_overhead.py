"""Deferred Guard overhead: a small MLP step, bare vs eager ``guard.step`` vs ``DeferredSteps``.

All three run the same fused AdamW loop on fixed random batches; the Guard runs every
shipped step-level invariant that applies to a from-scratch run, fed ``loss``, ``grad_norm``,
two loss ``components`` and ``tokens_per_sec``. Rounds are interleaved (the order rotates
each round) and each round's time, flushes included, is divided by its steps; medians::

    PYTHONPATH=src python benchmarks/deferred_overhead.py --threads 1
    PYTHONPATH=src python benchmarks/deferred_overhead.py --device cuda   # on a GPU

On a CPU a host transfer is a copy, so the deferred mode can only show its own bookkeeping
cost; on a GPU the eager Guard's per-step ``tolist()`` waits for the step's kernels, which
the deferred mode does once per ``--sync-every`` steps. The device→host transfers each
variant makes are counted in a separate, untimed pass. The headline ratio is printed last.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from step_times import add_round_options, step_invariants
from torch import nn

from traingate.contract.regime import FromScratch
from traingate.runtime.deferred import DeferredSteps
from traingate.runtime.guard import Guard

CLASSES = 10  # two 10-way heads: a cold start's summed loss is ln 100 = ln(vocab_size)
REGIME = FromScratch(CLASSES * CLASSES)
VARIANTS = ("bare", "eager", "deferred")


class Loop:
    """A two-head MLP trained with fused AdamW; ``variant`` says how the Guard sees a step."""

    def __init__(self, variant: str, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        device = torch.device(args.device)
        self.device = device
        self.body = nn.Sequential(
            nn.Linear(128, args.width), nn.ReLU(), nn.Linear(args.width, args.width), nn.ReLU()
        ).to(device)
        self.heads = nn.ModuleList([nn.Linear(args.width, CLASSES) for _ in range(2)]).to(device)
        params = [*self.body.parameters(), *self.heads.parameters()]
        self.params = params
        self.opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
        gen = torch.Generator().manual_seed(0)
        self.batches = [
            (
                torch.randn(args.batch, 128, generator=gen).to(device),
                torch.randint(0, CLASSES, (2, args.batch), generator=gen).to(device),
            )
            for _ in range(8)
        ]
        self.tokens = torch.tensor(float(args.batch), device=device)
        self.variant = variant
        self.step = 0
        self.guard = None
        self.steps = None
        self.guard_seconds: list[float] = []  # host time in guard.step / steps.step (flushes too)
        if variant != "bare":
            self.guard = Guard(regime=REGIME, only=step_invariants(REGIME), summary_every=0)
        if variant == "deferred":
            self.steps = DeferredSteps(self.guard, self.opt, sync_every=args.sync_every)

    def train_step(self) -> None:
        """One optimisation step, observed as the variant says."""
        x, y = self.batches[self.step % len(self.batches)]
        h = self.body(x)
        ce = [nn.functional.cross_entropy(head(h), y[i]) for i, head in enumerate(self.heads)]
        loss = ce[0] + ce[1]
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.params, 1.0)
        observed: dict[str, Any] = {
            "loss": loss.detach(),
            "grad_norm": norm,
            "components": {"a": ce[0].detach(), "b": ce[1].detach()},
            "tokens_per_sec": self.tokens,
        }
        start = time.perf_counter()
        if self.steps is not None:
            self.steps.step(self.step, **observed)
        elif self.guard is not None:
            self.guard.step(self.step, **observed)
        self.guard_seconds.append(time.perf_counter() - start)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1

    def round(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps (the device drained before and after)."""
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.train_step()
        if self.steps is not None:
            self.steps.flush()
        synchronize(self.device)
        return (time.perf_counter() - start) / steps


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def transfers_per_step(loop: Loop, steps: int) -> float:
    """Device→host transfers (``tolist``/``item``) per step, counted over ``steps`` steps."""
    counted = {"n": 0}
    originals: dict[str, Callable[..., Any]] = {}
    for name in ("tolist", "item"):
        originals[name] = getattr(torch.Tensor, name)

        def spy(tensor: torch.Tensor, *a: Any, _f: Callable[..., Any] = originals[name]) -> Any:
            counted["n"] += 1
            return _f(tensor, *a)

        setattr(torch.Tensor, name, spy)
    try:
        for _ in range(steps):
            loop.train_step()
        if loop.steps is not None:
            loop.steps.flush()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    return counted["n"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_round_options(parser, steps=50, rounds=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--sync-every", type=int, default=50, help="DeferredSteps flush period")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(f"load average before: {os.getloadavg()}")
    loops = {v: Loop(v, args) for v in VARIANTS}
    for loop in loops.values():  # warm up: first fused step, allocator, Guard state
        loop.round(args.sync_every)
        loop.guard_seconds.clear()
    print(
        f"{len(step_invariants(REGIME))} step invariants; batch {args.batch}, width "
        f"{args.width}, {args.steps} steps a round, {args.rounds} rounds, sync_every "
        f"{args.sync_every}"
    )
    per_step: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for v in order:
            per_step[v].append(loops[v].round(args.steps))
    for v in VARIANTS:
        q1, median, q3 = statistics.quantiles(per_step[v], n=4)
        print(
            f"step time {v:<8}: median {median * 1e3:.3f} ms "
            f"(quartiles {q1 * 1e3:.3f} - {q3 * 1e3:.3f} ms)"
        )
    for v in VARIANTS[1:]:
        host = loops[v].guard_seconds
        print(
            f"host time in the Guard per step, {v:<8}: median {statistics.median(host) * 1e6:.1f}"
            f" µs, mean {statistics.fmean(host) * 1e6:.1f} µs (the mean carries the flushes)"
        )
    for v in VARIANTS:
        print(f"device->host transfers per step, {v:<8}: {transfers_per_step(loops[v], 100):.2f}")
    guard = loops["deferred"].guard
    evaluations = {t.invariant.id: t.evaluations for t in guard.tracked}
    print(f"deferred Guard evaluations per invariant: {evaluations}")
    print(f"load average after: {os.getloadavg()}")
    bare, eager, deferred = (statistics.median(per_step[v]) for v in VARIANTS)
    print(f"ratio eager / bare: {eager / bare:.3f}")
    print(f"ratio deferred / eager: {deferred / eager:.3f}")
    print(f"ratio deferred / bare: {deferred / bare:.3f}")


if __name__ == "__main__":
    main()
