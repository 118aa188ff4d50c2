"""Guard overhead: a small transformer LM's step time with and without the Guard.

The same model, optimizer and batches run in short interleaved rounds (without, with, with,
without, ...: each pair alternates its order), so drift in machine load hits both sides alike.
The Guard runs every step-level invariant of the shipped contracts that applies to a
from-scratch run, and each of them is evaluated: the loop hands it two loss ``components``
(the cross-entropy of each half of the sequence, computed in both variants) so the
loss-balance invariant decides too. The last line is the ratio of the median step times::

    PYTHONPATH=src python benchmarks/guard_overhead.py --device cpu --steps 5 --rounds 40

On CPU every step's wall time is a sample; on CUDA, where steps are asynchronous, a round's
wall time (synchronised at both ends) divided by its steps is one sample. The median of the
per-pair ratios and the time spent inside ``guard.step`` are printed too, as cross-checks.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from step_times import add_round_options, print_step_times, step_invariants, timed_guard_step

from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard
from traingate.train.model import build_model

VOCAB = 257  # bytes + one special token, as the byte tokenizer has it
LR = 3e-4


class LMLoop:
    """A plain nanoGPT-style training step on fixed random token batches."""

    def __init__(self, device: torch.device, batch: int, seq: int) -> None:
        torch.manual_seed(0)
        self.device = device
        self.model = build_model("tiny", vocab_size=VOCAB, block_size=seq).to(device)
        self.opt = self.model.configure_optimizer(lr=LR)
        gen = torch.Generator().manual_seed(0)
        self.batches = [
            torch.randint(0, VOCAB, (batch, seq + 1), generator=gen).to(device) for _ in range(8)
        ]
        self.tokens = batch * seq
        self.step = 0
        self.last_seconds = 0.0
        self.guard_seconds: list[float] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def round(self, steps: int, guard: Guard | None) -> list[float]:
        """Run ``steps`` training steps; return step-time samples in seconds (see module doc)."""
        times = []
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            batch = self.batches[self.step % len(self.batches)]
            logits, loss = self.model(batch[:, :-1], batch[:, 1:])
            components = halves(logits.detach(), batch[:, 1:])
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            tokens_per_sec = self.tokens / self.last_seconds if self.last_seconds else 0.0
            if guard is not None:
                timed_guard_step(
                    guard,
                    self.guard_seconds,
                    self.step,
                    loss=loss.detach(),
                    grad_norm=grad_norm,
                    components=components,
                    lr=LR,
                    tokens_per_sec=tokens_per_sec,
                )
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            self.last_seconds = time.perf_counter() - t0
            times.append(self.last_seconds)
        self.sync()
        if self.device.type == "cuda":
            return [(time.perf_counter() - start) / steps]
        return times


def halves(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cross-entropy of each half of the sequence: two loss components (on device)."""
    mid = targets.shape[1] // 2
    return {
        name: torch.nn.functional.cross_entropy(
            logits[:, part].reshape(-1, logits.shape[-1]), targets[:, part].reshape(-1)
        )
        for name, part in (("first_half", slice(None, mid)), ("second_half", slice(mid, None)))
    }


def machine_info(device: torch.device) -> list[str]:
    uname = platform.uname()
    lines = [
        f"platform: {platform.platform()}",
        f"processor: {platform.processor() or uname.machine} ({uname.machine})",
        f"os.cpu_count(): {os.cpu_count()}",
        f"torch {torch.__version__}, torch.get_num_threads(): {torch.get_num_threads()}",
    ]
    if device.type == "cuda":
        lines.append(f"cuda device: {torch.cuda.get_device_name(device)}")
    else:
        lines.append("cuda device: none (running on cpu)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    add_round_options(parser, steps=5, rounds=40)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of each variant")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    for line in machine_info(device):
        print(line)
    regime = FromScratch(VOCAB)
    ids = step_invariants(regime)
    print(f"model: tiny GPT, vocab {VOCAB}, batch {args.batch} x {args.seq} tokens, AdamW")
    print(f"guarded step-level invariants: {', '.join(ids)}")
    print(f"{args.rounds} rounds x {args.steps} steps per variant, interleaved")

    loop = LMLoop(device, args.batch, args.seq)
    with tempfile.TemporaryDirectory() as tmp:
        guard = Guard(regime=regime, only=ids, run_dir=Path(tmp) / "run")
        with guard:
            loop.round(args.warmup, None)
            loop.round(args.warmup, guard)
            without: list[list[float]] = []
            with_guard: list[list[float]] = []
            for i in range(args.rounds):
                if i % 2 == 0:
                    without.append(loop.round(args.steps, None))
                    with_guard.append(loop.round(args.steps, guard))
                else:
                    with_guard.append(loop.round(args.steps, guard))
                    without.append(loop.round(args.steps, None))
        verdict = guard.judge()

    for inv_id, inv in verdict.invariants.items():
        print(f"  {inv_id}: {inv.status} ({inv.evaluations} evaluations)")
    never = [inv_id for inv_id, inv in verdict.invariants.items() if inv.evaluations == 0]
    if never:
        print(f"NOT EVALUATED (the benchmark does not cover them): {', '.join(never)}")
    base = [t for r in without for t in r]
    guarded = [t for r in with_guard for t in r]
    pairs = [
        statistics.median(w) / statistics.median(b)
        for w, b in zip(with_guard, without, strict=True)
    ]
    print_step_times([("without Guard", base), ("with Guard", guarded)])
    inside = statistics.median(loop.guard_seconds)
    print(
        f"guard.step itself (host wall time, incl. its one device->host transfer): median "
        f"{inside * 1e6:.1f} us = {inside / statistics.median(base) * 100:.2f} % of a step"
    )
    print(f"median of per-pair ratios: {statistics.median(pairs):.3f}")
    ratio = statistics.median(guarded) / statistics.median(base)
    print(f"guard overhead ratio (median step time with/without): {ratio:.3f}")


if __name__ == "__main__":
    main()
