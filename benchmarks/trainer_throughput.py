"""Trainer throughput: tokens/s of ``pretrain()`` against a bare loop of the same work.

The trainer runs with the default contracts (every step, validation and final check on),
periodic validation and checkpoints, export off. The bare loop trains the same model on the
same batches with the same optimizer, lr schedule and gradient clipping, and nothing else:
no Guard, no checkpoints, no eval. Rounds interleave the two (A/B, then B/A, ...), so drift in
machine load hits both alike. Each run's first ``--warmup`` steps are excluded: its clock
starts when step ``warmup`` fetches its batch and stops when the run returns. The last line
is the median of the per-round trainer/bare ratios::

    PYTHONPATH=src:cli python benchmarks/trainer_throughput.py --steps 40 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from traingate.train import data as data_module
from traingate.train.config import PretrainConfig, resolve
from traingate.train.corpus import file_docstrings, stdlib_dir
from traingate.train.data import TextSource, TokenStream
from traingate.train.model import build_model
from traingate.train.pretrain import pretrain
from traingate.train.setup import lr_at
from traingate.train.tokenizer import ByteTokenizer

STDLIB_MODULES = ("argparse", "textwrap", "string", "pathlib", "functools", "csv", "shutil")


def write_corpus(path: Path) -> Path:
    """Docstrings of a few stdlib modules (whitespace-normalised) as a blank-line separated file."""
    root = stdlib_dir()
    docs = [
        " ".join(text.split())
        for name in STDLIB_MODULES
        for _, text in file_docstrings(root / f"{name}.py", name)
        if len(text) > 40
    ]
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@contextmanager
def batch_clock(warmup: int, device: str) -> Iterator[dict[str, float]]:
    """Record when batch number ``warmup`` (0-based) is fetched from any ``TokenStream``."""
    original: Callable[[TokenStream], tuple[torch.Tensor, torch.Tensor]] = TokenStream.__next__
    mark: dict[str, float] = {}

    def timed(stream: TokenStream) -> tuple[torch.Tensor, torch.Tensor]:
        if stream.batches == warmup and "start" not in mark:
            if device == "cuda":
                torch.cuda.synchronize()
            mark["start"] = time.perf_counter()
        return original(stream)

    data_module.TokenStream.__next__ = timed  # type: ignore[method-assign]
    try:
        yield mark
    finally:
        data_module.TokenStream.__next__ = original  # type: ignore[method-assign]


def _stop(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def trainer_options(args: argparse.Namespace, data: Path, out: Path) -> PretrainConfig:
    """The trainer's options for one run: contracts, eval and checkpoints on, export off."""
    return PretrainConfig(
        out=out,
        data=data,
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        block_size=args.block_size,
        device=args.device,
        seed=args.seed,
        export_onnx=False,
        progress=False,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
    )


def trainer_run(args: argparse.Namespace, data: Path, out: Path) -> float:
    """Tokens/s of ``pretrain()`` after its warm-up steps (contracts, eval, checkpoints on)."""
    with batch_clock(args.warmup, args.device) as mark:
        pretrain(trainer_options(args, data, out))
        stopped = _stop(args.device)
    return args.steps * args.batch_size * args.block_size / (stopped - mark["start"])


def bare_run(args: argparse.Namespace, data: Path) -> float:
    """Tokens/s of the same model, batches, optimizer, schedule and clipping, nothing else."""
    tokenizer = ByteTokenizer()
    # The trainer's own resolution gives the bare loop the same lr, warm-up and block size.
    cfg = resolve(trainer_options(args, data, Path()), data=data, vocab_size=tokenizer.vocab_size)
    torch.manual_seed(args.seed)
    model = build_model(cfg.model, tokenizer.vocab_size, cfg.block_size).to(args.device)
    optimizer = model.configure_optimizer(cfg.lr)
    stream = TokenStream(TextSource(data), tokenizer, cfg.batch_size, cfg.block_size)
    with batch_clock(args.warmup, args.device) as mark:
        for step in range(cfg.max_steps):
            lr = lr_at(step, cfg.lr, cfg.warmup, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = next(stream)
            _, loss = model(x.to(args.device), y.to(args.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        stopped = _stop(args.device)
    return args.steps * args.batch_size * args.block_size / (stopped - mark["start"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved A/B rounds")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at each run's start")
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="trainer validation interval (default: the trainer's, a quarter of the run)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="trainer checkpoint interval (default: the trainer's, = eval interval)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"platform: {platform.platform()}  python {platform.python_version()}")
    print(f"cpus: {os.cpu_count()}  torch {torch.__version__}  threads {torch.get_num_threads()}")
    if args.device == "cuda":
        print(f"gpu: {torch.cuda.get_device_name()}")
    print(
        f"tiny GPT, byte tokenizer, batch {args.batch_size} x block {args.block_size}, "
        f"{args.warmup} warm-up + {args.steps} timed steps, {args.rounds} rounds"
    )
    trainer_tps: list[float] = []
    bare_tps: list[float] = []
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_corpus(Path(tmp) / "docs.txt")
        for round_ in range(args.rounds):
            out = Path(tmp) / f"run-{round_}"
            if round_ % 2 == 0:
                t = trainer_run(args, data, out)
                b = bare_run(args, data)
            else:
                b = bare_run(args, data)
                t = trainer_run(args, data, out)
            trainer_tps.append(t)
            bare_tps.append(b)
            ratios.append(t / b)
            print(f"round {round_}: trainer {t:,.0f} tok/s  bare {b:,.0f} tok/s  ratio {t / b:.3f}")
    print(f"trainer tokens/s (median): {statistics.median(trainer_tps):,.0f}")
    print(f"bare tokens/s (median): {statistics.median(bare_tps):,.0f}")
    print(f"trainer/bare throughput ratio (median): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
