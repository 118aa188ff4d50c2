"""Guard step cost: a small MLP step (about 2 ms on one CPU thread) with and without the Guard.

The Guard runs every shipped step-level invariant that applies to a from-scratch run, and
the loop hands it what they need: ``loss``, ``grad_norm``, two loss ``components`` (so the
loss-balance invariant is evaluated too) and ``tokens_per_sec``. Each invariant's
evaluation count is printed, so one that was never evaluated shows. Three measurements::

    PYTHONPATH=src python benchmarks/guard_step_cost.py --threads 1

1. step time without and with the Guard, in interleaved rounds (each pair alternates its
   order), medians: the headline ratio, printed last;
2. ``guard.step`` host time (µs) in the loop, beside a naive hand-written check (one
   ``isfinite(...).item()`` over loss and grad norm plus a grad-norm range test) and a
   fused floor (:func:`fused_floor`: every step invariant's passing path inlined in one
   function over host floats, with the shipped parameters; no evidence, no decisions):
   the least Python these decisions could cost in this loop;
3. ``guard.step`` host time on a healthy observation with 0, 1, ... of the invariants
   bound, called back to back (the interpreter's caches warm, unlike in the loop, where
   each step's matrix work evicts them), and the least-squares slope: the cost per
   invariant.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from step_times import add_round_options, print_step_times, step_invariants, timed_guard_step
from torch import nn

from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard

HEAD_CLASSES = 10  # two 10-way heads: a cold start's summed loss is ln 100 = ln(vocab_size)
REGIME = FromScratch(HEAD_CLASSES * HEAD_CLASSES)
LR = 1e-3
LN_VOCAB = math.log(HEAD_CLASSES * HEAD_CLASSES)


class TwoHeadMLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(128, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.a = nn.Linear(width, HEAD_CLASSES)
        self.b = nn.Linear(width, HEAD_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.a(h), self.b(h)


class Loop:
    """A plain training step on fixed random batches; two cross-entropy loss components."""

    def __init__(self, batch: int, width: int) -> None:
        torch.manual_seed(0)
        self.model = TwoHeadMLP(width)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(0)
        self.batches = [
            (
                torch.randn(batch, 128, generator=gen),
                torch.randint(0, HEAD_CLASSES, (batch,), generator=gen),
                torch.randint(0, HEAD_CLASSES, (batch,), generator=gen),
            )
            for _ in range(8)
        ]
        self.batch = batch
        self.step = 0
        self.last_seconds = 0.0
        self.guard_seconds: list[float] = []
        self.naive_seconds: list[float] = []
        self.floor_seconds: list[float] = []
        self.floor = FloorState()

    def round(
        self, steps: int, guard: Guard | None, naive: bool = False, floor: bool = False
    ) -> list[float]:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            x, ya, yb = self.batches[self.step % len(self.batches)]
            la, lb = self.model(x)
            loss_a = nn.functional.cross_entropy(la, ya)
            loss_b = nn.functional.cross_entropy(lb, yb)
            loss = loss_a + loss_b
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            tokens_per_sec = self.batch / self.last_seconds if self.last_seconds else 0.0
            if guard is not None:
                observed = {  # every step invariant's observations, the two heads as components
                    "loss": loss.detach(),
                    "grad_norm": grad_norm,
                    "components": {"a": loss_a.detach(), "b": loss_b.detach()},
                    "lr": LR,
                    "tokens_per_sec": tokens_per_sec,
                }
                timed_guard_step(guard, self.guard_seconds, self.step, **observed)
            elif naive:
                g0 = time.perf_counter()
                naive_check(loss.detach(), grad_norm)
                self.naive_seconds.append(time.perf_counter() - g0)
            elif floor:
                g0 = time.perf_counter()
                fused_floor(
                    self.floor,
                    self.step,
                    (loss.detach(), grad_norm, loss_a.detach(), loss_b.detach()),
                    LR,
                    tokens_per_sec,
                )
                self.floor_seconds.append(time.perf_counter() - g0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            self.last_seconds = time.perf_counter() - t0
            times.append(self.last_seconds)
        return times


def naive_check(loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
    """What a hand-written loop would do: one sync, then a finiteness and a range test."""
    both = torch.stack([loss, grad_norm])
    if not bool(torch.isfinite(both).all().item()):
        raise FloatingPointError("non-finite loss or grad norm")
    norm = float(grad_norm)
    if not 1e-3 <= norm <= 100.0:
        raise FloatingPointError(f"grad norm {norm:.4g} out of range")


@dataclass
class FloorState:
    """What :func:`fused_floor` carries from step to step."""

    norm_streak: int = 0
    window: deque[float] = field(default_factory=deque)
    window_sum: float = 0.0
    spikes: int = 0
    previous: list[float] = field(default_factory=lambda: [math.nan, math.nan])
    repeats: list[int] = field(default_factory=lambda: [0, 0])
    dominated: int = 0
    rows: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def fused_floor(
    s: FloorState, step: int, tensors: tuple[torch.Tensor, ...], lr: float, tokens_per_sec: float
) -> None:
    """Every shipped step invariant's passing path, inlined (the contracts' parameters
    written in): one transfer, a metrics row, then finite, gradient-norm range and streak,
    loss-spike window, initial loss, throughput, placeholder repeats, metrics present and
    loss balance. It keeps no evidence and builds no decision: a floor, not a Guard."""
    loss, norm, a, b = torch.stack(tensors).tolist()
    s.rows.append((step, {"loss": loss, "grad_norm": norm, "a": a, "b": b, "lr": lr}))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise FloatingPointError("non-finite loss or grad norm")
    s.norm_streak = s.norm_streak + 1 if not 1e-3 <= norm <= 100.0 else 0
    if s.norm_streak >= 5:
        raise FloatingPointError("gradient norm out of range for 5 steps")
    window = s.window
    if len(window) == 100:
        s.spikes = s.spikes + 1 if loss >= 2.0 * s.window_sum / 100 else 0
        if s.spikes > 4:
            raise FloatingPointError("loss spike")
        s.window_sum -= window.popleft()
    window.append(loss)
    s.window_sum += loss
    if step == 0 and abs(loss - LN_VOCAB) > 0.5 * LN_VOCAB:
        raise FloatingPointError("initial loss")
    if not tokens_per_sec >= 0:
        raise FloatingPointError("throughput")
    for i, value in enumerate((loss, norm)):
        s.repeats[i] = s.repeats[i] + 1 if value == s.previous[i] else 1
        s.previous[i] = value
    if max(s.repeats) >= 5:
        raise FloatingPointError("a placeholder metric")
    share = max(abs(a), abs(b)) / (abs(a) + abs(b))
    s.dominated = s.dominated + 1 if share > 0.9 else 0


def step_host_us(id_sets: Sequence[Sequence[str]], reps: int, tmp: Path) -> list[float]:
    """Median host µs of ``guard.step`` on a healthy observation (tensors, the same shape
    at every step; values cycle through a few so no placeholder check fires), one Guard per
    id set, the Guards stepped in turn (interleaved), after enough steps that every window
    is full."""
    cycle = [
        (
            torch.tensor(4.6 + 0.01 * j),
            torch.tensor(0.5 + 0.01 * j),
            {"a": torch.tensor(2.3 + 0.01 * j), "b": torch.tensor(2.3)},
        )
        for j in range(7)
    ]
    guards = [
        Guard(regime=REGIME, only=list(ids), run_dir=tmp / f"sweep{i}")
        for i, ids in enumerate(id_sets)
    ]
    samples: list[list[float]] = [[] for _ in guards]
    for step in range(reps + 150):
        order = list(enumerate(guards))
        loss, grad_norm, comps = cycle[step % len(cycle)]
        for i, guard in order if step % 2 == 0 else order[::-1]:
            g0 = time.perf_counter()
            guard.step(
                step, loss=loss, grad_norm=grad_norm, components=comps, lr=LR, tokens_per_sec=1.0
            )
            if step >= 150:
                samples[i].append(time.perf_counter() - g0)
    for guard in guards:
        guard.close()
    return [statistics.median(s) * 1e6 for s in samples]


def slope(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ``ys`` on ``xs``."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_round_options(parser, steps=20, rounds=30)
    parser.add_argument("--warmup", type=int, default=150, help="untimed guarded steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--reps", type=int, default=400, help="guard.step calls per sweep point")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()}")
    ids = step_invariants(REGIME)
    print(f"guarded step-level invariants: {', '.join(ids)}")
    loop = Loop(args.batch, args.width)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        guard = Guard(regime=REGIME, only=ids, run_dir=tmp / "run")
        with guard:
            loop.round(args.warmup, guard)  # fills the windows: every invariant decides
            loop.guard_seconds.clear()
            without: list[list[float]] = []
            with_guard: list[list[float]] = []
            for i in range(args.rounds):
                order = [(None, without), (guard, with_guard)]
                for g, into in order if i % 2 == 0 else order[::-1]:
                    into.append(loop.round(args.steps, g))
            for _ in range(args.rounds // 3 or 1):  # naive check, floor: not in the baseline
                loop.round(args.steps, None, naive=True)
                loop.round(args.steps, None, floor=True)
        verdict = guard.judge()
        for inv_id, inv in verdict.invariants.items():
            print(f"  {inv_id}: {inv.status} ({inv.evaluations} evaluations)")
        never = [i for i, inv in verdict.invariants.items() if inv.evaluations == 0]
        if never:
            raise SystemExit(f"never evaluated: {', '.join(never)}")

        counts = list(range(len(ids) + 1))
        cost = step_host_us([ids[:k] for k in counts], args.reps, tmp)
    print("guard.step host time back to back (caches warm), by invariants bound:")
    for k, us in zip(counts, cost, strict=True):
        print(f"  {k} invariant(s): {us:.1f} us")
    fixed, per = slope(counts, cost)
    print(f"cost growth: {fixed:.1f} us fixed + {per:.2f} us per invariant")

    base = [t for r in without for t in r]
    guarded = [t for r in with_guard for t in r]
    print_step_times([("without Guard", base), ("with Guard", guarded)])
    inside = statistics.median(loop.guard_seconds) * 1e6
    naive = statistics.median(loop.naive_seconds) * 1e6
    print(f"guard.step host time in the loop: median {inside:.1f} us")
    print(f"naive isfinite(...).item() + grad-norm check: median {naive:.1f} us")
    floor = statistics.median(loop.floor_seconds) * 1e6
    print(f"fused floor (every step check's passing path inlined): median {floor:.1f} us")
    pairs = [
        statistics.median(w) / statistics.median(b)
        for w, b in zip(with_guard, without, strict=True)
    ]
    print(f"median of per-pair ratios: {statistics.median(pairs):.3f}")
    print(f"load average at end: {os.getloadavg()}")
    ratio = statistics.median(guarded) / statistics.median(base)
    assert math.isfinite(ratio)
    print(f"guard overhead ratio (median step time with/without): {ratio:.3f}")


if __name__ == "__main__":
    main()
