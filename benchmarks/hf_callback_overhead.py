"""HF callback overhead: a tiny GPT-2 ``transformers.Trainer`` step with and without traingate.

Each round trains a fresh model (same seed, same batches) for ``--steps`` optimizer steps in
a new ``Trainer``: once plain, once with ``TraingateCallback`` attached (the default
contracts for a from-scratch run: the Guard judges every step before the optimizer). Rounds
interleave the two in one process (without, with, then with, without, ...), so drift in
machine load hits both sides alike. A step's time is the wall time between consecutive
``on_step_end`` events (data, forward/backward, clipping, the Guard, the optimizer, the
Trainer's own bookkeeping); each round's first ``--warmup`` steps are left out. The last
line is the ratio of the median step times::

    PYTHONPATH=src python benchmarks/hf_callback_overhead.py --steps 30 --rounds 20

torch runs one intra-op thread unless ``--threads`` says otherwise: the model is too small
to gain from more, and on a 2-core VM two threads made single steps vary from 0.15 to 2 s,
noise that would swamp what is measured here.
The time spent inside the callback's ``on_pre_optimizer_step`` (where ``guard.step`` runs,
with its one device-to-host transfer) and the median of the per-round ratios are printed
as cross-checks. CPU only: the benchmark measures host-side overhead.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import transformers
from step_times import add_round_options, print_step_times
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from traingate.contract.regime import FromScratch
from traingate.integrations.huggingface import TraingateCallback


class Tokens(torch.utils.data.Dataset):
    """Fixed random token rows; labels are the inputs (the model shifts them)."""

    def __init__(self, rows: int, seq: int, vocab: int) -> None:
        gen = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, vocab, (rows, seq), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class StepClock(TrainerCallback):
    """The wall time between consecutive optimizer steps' ``on_step_end``."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.ends = [time.perf_counter()]

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.ends.append(time.perf_counter())

    def steps(self, warmup: int) -> list[float]:
        return [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)][warmup:]


def timed(method: Any, into: list[float]) -> Any:
    """``method`` that appends its own wall time to ``into``."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - t0)

    return wrapped


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.config = GPT2Config(
            n_layer=args.layers,
            n_head=args.heads,
            n_embd=args.embd,
            vocab_size=args.vocab,
            n_positions=args.seq,
        )
        self.data = Tokens(args.batch * args.steps, args.seq, args.vocab)
        self.inside: list[float] = []  # seconds in on_pre_optimizer_step
        self.invariants: list[str] = []
        self.rounds = 0

    def round(self, guarded: bool) -> list[float]:
        """One fresh Trainer run of ``--steps`` steps; its step times (after warm-up)."""
        a = self.args
        self.rounds += 1
        torch.manual_seed(0)
        clock = StepClock()
        settings = TrainingArguments(
            output_dir=str(self.tmp / f"out-{self.rounds}"),
            max_steps=a.steps,
            per_device_train_batch_size=a.batch,
            learning_rate=1e-3,
            max_grad_norm=1.0,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=GPT2LMHeadModel(self.config),
            args=settings,
            train_dataset=self.data,
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)  # the end-of-training metrics line
        if guarded:
            gate = TraingateCallback(
                regime=FromScratch(vocab_size=a.vocab), run_dir=self.tmp / f"run-{self.rounds}"
            )
            gate.on_pre_optimizer_step = timed(gate.on_pre_optimizer_step, self.inside)
            gate.attach(trainer)
        trainer.train()
        if guarded:
            assert gate.verdict is not None and gate.guard is not None
            self.invariants = [t.invariant.id for t in gate.guard.by_point["step"]]
        return clock.steps(a.warmup)


def machine_info() -> list[str]:
    uname = platform.uname()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"platform: {platform.platform()}",
        f"processor: {platform.processor() or uname.machine} ({uname.machine})",
        f"os.cpu_count(): {os.cpu_count()}, usable: {len(os.sched_getaffinity(0))}",
        f"load average (1, 5, 15 min): {load}",
        f"torch {torch.__version__}, torch.get_num_threads(): {torch.get_num_threads()}, "
        f"transformers {transformers.__version__}",
    ]


def quiet() -> None:
    warnings.filterwarnings("ignore")
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("traingate").setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_round_options(parser, steps=30, rounds=20)  # steps: optimizer steps
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each round")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--embd", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet()
    for line in machine_info():
        print(line)
    print(
        f"model: GPT-2 {args.layers} layers x {args.embd} wide, {args.heads} heads, vocab "
        f"{args.vocab}; batch {args.batch} x {args.seq} tokens, AdamW, clipping at 1.0"
    )
    print(f"{args.rounds} rounds x {args.steps} steps per variant (first {args.warmup} untimed)")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, Path(tmp))
        bench.round(False)  # untimed: first-use costs (imports, allocator) hit neither side
        bench.round(True)
        bench.inside.clear()
        without: list[list[float]] = []
        with_cb: list[list[float]] = []
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for guarded in order:
                (with_cb if guarded else without).append(bench.round(guarded))
    elapsed = time.perf_counter() - start

    print(f"guarded step-level invariants: {', '.join(bench.invariants)}")
    base = [t for r in without for t in r]
    guarded_steps = [t for r in with_cb for t in r]
    print_step_times([("without callback", base), ("with callback", guarded_steps)])
    inside = statistics.median(bench.inside)
    print(
        f"on_pre_optimizer_step itself (guard.step and its one host transfer): median "
        f"{inside * 1e6:.1f} us = {inside / statistics.median(base) * 100:.2f} % of a step"
    )
    pairs = [
        statistics.median(w) / statistics.median(b) for w, b in zip(with_cb, without, strict=True)
    ]
    print(f"median of per-round ratios: {statistics.median(pairs):.3f}")
    print(f"load average after ({elapsed:.0f} s): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratio = statistics.median(guarded_steps) / statistics.median(base)
    print(f"callback overhead ratio (median step time with/without): {ratio:.3f}")


if __name__ == "__main__":
    main()
