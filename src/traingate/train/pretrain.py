"""The reference pretraining loop: a GPT on streamed text, with every contract enforced.

Read top to bottom: set up (data, tokenizer, model, optimizer, Guard), maybe resume, then
train: forward, backward, clip (its norm feeds the gradient checks: no second pass), the
Guard's step check *before* the optimizer applies anything, validation every
``eval_every`` steps (an "epoch" for the contracts), atomic checkpoints, ONNX export at the
end. A violated ``abort`` invariant raises :class:`~traingate.InvariantViolation`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import shipped_contracts_dir
from traingate.runtime.guard import Guard
from traingate.train.checkpoint import (
    latest_valid_checkpoint,
    load_checkpoint,
    save_step_checkpoint,
)
from traingate.train.corpus import builtin_corpus_path
from traingate.train.data import DataError, TextSource, TokenStream, validation_set
from traingate.train.model import GPT, build_model
from traingate.train.tokenizer import ByteTokenizer, Tokenizer, load_tokenizer, train_bpe

log = logging.getLogger("traingate.train")

Mode = Literal["from-scratch", "finetune"]
# --mode sets (lr_max, warmup steps, target val loss) together.
MODE_DEFAULTS: dict[str, tuple[float, int, float]] = {
    "from-scratch": (3e-4, 1000, 3.0),
    "finetune": (5e-5, 100, 2.2),
}
# Shipped contracts that apply to language-model pretraining (liveness, calibration and
# confusion need a classifier's predictions: pass them with --contracts when a loop has them).
PRETRAIN_CONTRACTS = ("training-loop-pretrain-v1.yaml", "export-onnx-v1.yaml")


class UsageError(Exception):
    """A bad combination of options or inputs (CLI exit 2)."""


@dataclass
class PretrainConfig:
    """Everything a run needs; lr/warmup/target default from ``mode`` (explicit values win)."""

    mode: Mode = "from-scratch"
    out: Path = Path("runs/pretrain")
    data: Path | None = None
    text_column: str = "text"
    max_steps: int = 400
    model: str = "tiny"
    tokenizer: Literal["bytes", "bpe"] = "bytes"
    vocab_size: int | None = None
    init_from: Path | None = None
    resume: bool = False
    seed: int = 1337
    device: str = "cpu"
    contracts: list[Path] | None = None
    only: list[str] | None = None
    batch_size: int = 8
    block_size: int | None = None
    lr: float | None = None
    warmup: int | None = None
    target_val_loss: float | None = None
    eval_every: int | None = None
    eval_blocks: int = 16
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    val_percent: float = 5.0
    export_onnx: bool = True
    progress: bool | None = None

    def resolved(self) -> PretrainConfig:
        """Fill mode-dependent defaults: warm-up is shortened to 10 % of a short run."""
        lr, warmup, target = MODE_DEFAULTS[self.mode]
        cfg = PretrainConfig(**asdict(self))
        cfg.lr = self.lr if self.lr is not None else lr
        cfg.warmup = (
            self.warmup if self.warmup is not None else min(warmup, max(1, self.max_steps // 10))
        )
        cfg.target_val_loss = self.target_val_loss if self.target_val_loss is not None else target
        cfg.eval_every = self.eval_every or max(1, self.max_steps // 4)
        cfg.checkpoint_every = self.checkpoint_every or cfg.eval_every
        return cfg


@dataclass
class PretrainResult:
    """How a run ended, with the Guard's verdict and where things were written."""

    steps: int
    val_losses: list[float]
    train_losses: list[float]
    verdict: dict[str, Any]
    interrupted: bool = False
    onnx_path: Path | None = None
    onnx_max_abs_diff: float | None = None
    checkpoints: list[Path] = field(default_factory=list)


def lr_at(step: int, lr_max: float, warmup: int, max_steps: int) -> float:
    """Linear warm-up to ``lr_max``, then cosine decay to 10 % of it at ``max_steps``."""
    if step < warmup:
        return lr_max * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return lr_max * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


# -- distributed ---------------------------------------------------------------------------


def _init_distributed(device: str) -> tuple[int, int]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); (rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _all_mean(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world
    return value


# -- setup ---------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _source(cfg: PretrainConfig) -> TextSource:
    path = cfg.data if cfg.data is not None else builtin_corpus_path()
    return TextSource(path, column=cfg.text_column)


def _tokenizer(
    cfg: PretrainConfig, source: TextSource, resume_dir: Path | None, init: dict | None
) -> Tokenizer:
    """Resume → the run's tokenizer; --init-from → the checkpoint's; else build one."""
    tok_dir = cfg.out / "tokenizer"
    if resume_dir is not None and tok_dir.is_dir():
        return load_tokenizer(tok_dir)
    if init is not None:
        ckpt = Path(init["_path"])
        found = [
            p for p in (ckpt.parent / "tokenizer", ckpt.parent.parent / "tokenizer") if p.is_dir()
        ]
        if not found:
            raise UsageError(
                f"{ckpt}: no tokenizer/ folder beside the checkpoint or in its run dir"
            )
        init_tok = found[0]
        tokenizer = load_tokenizer(init_tok)
    elif cfg.tokenizer == "bpe":
        if cfg.vocab_size is None:
            raise UsageError("--tokenizer bpe needs --vocab-size N")
        log.info("training a BPE tokenizer with %d tokens on the train split", cfg.vocab_size)
        tokenizer = train_bpe(source.texts("train", cfg.val_percent), cfg.vocab_size)
    else:
        if cfg.vocab_size not in (None, ByteTokenizer().vocab_size):
            raise UsageError("--vocab-size only applies to --tokenizer bpe (bytes have 257 tokens)")
        tokenizer = ByteTokenizer()
    tokenizer.save(tok_dir)
    return tokenizer


# -- the run -------------------------------------------------------------------------------


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and leaves cleanly."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum


@contextlib.contextmanager
def _signals(flag: _StopFlag) -> Iterator[None]:
    if threading_main():
        previous = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    else:
        yield


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@torch.no_grad()
def evaluate(
    model: GPT,
    val: tuple[torch.Tensor, torch.Tensor],
    device: str,
    rank: int,
    world: int,
    batch_size: int,
) -> float:
    """Mean val cross-entropy over this rank's shard of the fixed val set, averaged over ranks."""
    model.eval()
    x_all, y_all = val
    idx = list(range(rank, x_all.size(0), world))
    total = torch.zeros((), device=device)
    for i in range(0, len(idx), batch_size):
        sel = idx[i : i + batch_size]
        with _autocast(device):
            _, loss = model(x_all[sel].to(device), y_all[sel].to(device))
        total += loss.float() * len(sel)
    model.train()
    mean = total / max(1, len(idx))
    return float(_all_mean(mean, world).item())


def _autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Run (or resume) a gated pretraining; raises InvariantViolation when a contract aborts."""
    cfg = config.resolved()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    rank, world = _init_distributed(cfg.device)
    ckpt_dir = cfg.out / "checkpoints"
    if not cfg.resume and any(
        (cfg.out / name).exists() for name in ("evidence.jsonl", "verdict.json", "checkpoints")
    ):
        raise UsageError(
            f"{cfg.out} already holds a run: continue it with --resume auto or choose another --out"
        )
    cfg.out.mkdir(parents=True, exist_ok=True)
    resume = latest_valid_checkpoint(ckpt_dir) if cfg.resume else None
    if cfg.resume and resume is None:
        log.info("--resume auto: no valid checkpoint in %s, starting fresh", ckpt_dir)
    init = None
    if cfg.init_from is not None and resume is None:
        init = load_checkpoint(cfg.init_from)
        init["_path"] = str(cfg.init_from)
    elif cfg.mode == "finetune" and resume is None:
        log.warning(
            "finetune without --init-from: the weights are random "
            "(INV-TRAIN-005 will judge the cold start)"
        )

    _seed_everything(cfg.seed)
    source = _source(cfg)
    tokenizer = _tokenizer(cfg, source, ckpt_dir if resume else None, init)
    vocab = tokenizer.vocab_size
    model = build_model(cfg.model, vocab, cfg.block_size)
    block = model.config.block_size
    if init is not None:
        model.load_state_dict(init["model"])
    model.to(cfg.device)
    raw_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    optimizer = raw_model.configure_optimizer(cfg.lr)  # type: ignore[arg-type]
    stream = TokenStream(
        source,
        tokenizer,
        cfg.batch_size,
        block,
        val_percent=cfg.val_percent,
        rank=rank,
        world_size=world,
    )
    val = validation_set(source, tokenizer, block, cfg.eval_blocks, cfg.val_percent)
    regime: Finetune | FromScratch = (
        FromScratch(vocab) if cfg.mode == "from-scratch" else Finetune()
    )
    defaults = PRETRAIN_CONTRACTS if cfg.export_onnx else PRETRAIN_CONTRACTS[:1]
    contracts = cfg.contracts or [shipped_contracts_dir() / name for name in defaults]

    step, epoch = 0, 0
    result = PretrainResult(0, [], [], {})
    with Guard(
        contracts,
        only=cfg.only,
        regime=regime,
        params={"vocab_size": vocab},
        run_dir=cfg.out,
        summary_every=cfg.eval_every or 100,
    ) as guard:
        if resume is not None:
            path, payload = resume
            raw_model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            stream.load_state_dict(payload["stream"])
            guard.load_state_dict(json.loads(payload["guard"]))
            _set_rng_state(payload["rng"])
            step, epoch = int(payload["step"]), int(payload["epoch"])
            result.val_losses = list(payload["val_losses"])
            log.info("resumed from %s at step %d", path, step)
        _write_config(cfg, vocab, guard, rank)
        progress = _Progress(cfg, rank)
        stop = _StopFlag()
        tokens_per_step = cfg.batch_size * block * world
        with _signals(stop):
            while step < cfg.max_steps:
                started = time.perf_counter()
                lr = lr_at(step, cfg.lr, cfg.warmup, cfg.max_steps)  # type: ignore[arg-type]
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = next(stream)
                with _autocast(cfg.device):
                    _, loss = model(x.to(cfg.device), y.to(cfg.device))
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                elapsed = max(time.perf_counter() - started, 1e-9)
                seen = guard.step(
                    step,
                    loss=loss,
                    grad_norm=grad_norm,
                    lr=lr,
                    tokens_per_sec=tokens_per_step / elapsed,
                )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last_loss = seen["loss"]
                result.train_losses.append(last_loss)
                progress.update(step, last_loss, lr, tokens_per_step / elapsed, guard)
                if step % cfg.eval_every == 0 or step == cfg.max_steps:  # type: ignore[operator]
                    val_loss = evaluate(raw_model, val, cfg.device, rank, world, cfg.batch_size)
                    result.val_losses.append(val_loss)
                    guard.validation(epoch, val_loss=val_loss, step=step)
                    progress.note(f"epoch {epoch} (step {step}): val loss {val_loss:.4f}")
                    epoch += 1
                    if val_loss <= cfg.target_val_loss:  # type: ignore[operator]
                        progress.note(f"target val loss {cfg.target_val_loss} reached")
                if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or stop.signum:  # type: ignore[operator]
                    result.checkpoints.append(
                        _checkpoint(
                            cfg,
                            ckpt_dir,
                            raw_model,
                            optimizer,
                            stream,
                            guard,
                            step,
                            epoch,
                            result,
                            rank,
                        )
                    )
                if stop.signum:
                    result.interrupted = True
                    guard.interrupted = f"signal {stop.signum} at step {step}"
                    progress.note(
                        f"stopped by signal {stop.signum} at step {step}; checkpoint saved, "
                        "continue with --resume auto"
                    )
                    break
        progress.close()
        result.steps = step
        if not result.interrupted:
            final: dict[str, float] = (
                {"val_loss": result.val_losses[-1]} if result.val_losses else {}
            )
            if cfg.export_onnx and rank == 0:
                from traingate.train.export import export_onnx, onnx_parity

                result.onnx_path = export_onnx(raw_model, cfg.out / "model.onnx", block, vocab)
                result.onnx_max_abs_diff = onnx_parity(raw_model, result.onnx_path, _heldout(val))
                final["onnx_max_abs_diff"] = result.onnx_max_abs_diff
            guard.final(**final)
    result.verdict = guard.close()
    return result


def _heldout(val: tuple[torch.Tensor, torch.Tensor], n: int = 4) -> list[torch.Tensor]:
    """A few held-out val blocks for the ONNX parity check."""
    return [val[0][i : i + 1] for i in range(min(n, val[0].size(0)))]


def _checkpoint(
    cfg: PretrainConfig,
    ckpt_dir: Path,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    stream: TokenStream,
    guard: Guard,
    step: int,
    epoch: int,
    result: PretrainResult,
    rank: int,
) -> Path:
    """Everything needed to resume exactly; written atomically by rank 0."""
    path = ckpt_dir / f"step-{step:08d}.pt"
    if rank != 0:
        return path
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "stream": stream.state_dict(),
        "guard": json.dumps(guard.state_dict()),
        "rng": _rng_state(),
        "step": step,
        "epoch": epoch,
        "val_losses": list(result.val_losses),
        "config": json.dumps(_config_dict(cfg)),
        "contracts": json.dumps({c.contract: c.version for c in guard.contracts}),
        "model_config": json.dumps(asdict(model.config)),
    }
    return save_step_checkpoint(ckpt_dir, step, payload, keep=cfg.keep_checkpoints)


def _config_dict(cfg: PretrainConfig) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, list) else v)
        for k, v in asdict(cfg).items()
    }


def _write_config(cfg: PretrainConfig, vocab: int, guard: Guard, rank: int) -> None:
    if rank != 0:
        return
    from traingate.runtime.evidence import atomic_write_text

    payload = {
        **_config_dict(cfg),
        "vocab_size": vocab,
        "regime": guard.regime.model_dump(),
        "contracts": {c.contract: c.version for c in guard.contracts},
    }
    atomic_write_text(cfg.out / "config.json", json.dumps(payload, indent=2) + "\n")


class _Progress:
    """A one-line progress bar on a terminal (loss, lr, tokens/s, gates); quiet otherwise."""

    def __init__(self, cfg: PretrainConfig, rank: int) -> None:
        tty = sys.stderr.isatty()
        self.live = (cfg.progress if cfg.progress is not None else tty) and rank == 0
        self.rank = rank
        self.max_steps = cfg.max_steps
        self.every = max(1, cfg.max_steps // 10)

    def update(self, step: int, loss: float, lr: float, tps: float, guard: Guard) -> None:
        if not self.live:
            if self.rank == 0 and step % self.every == 0:
                log.info(
                    "step %d/%d loss %.4f lr %.2e %.0f tok/s", step, self.max_steps, loss, lr, tps
                )
            return
        states = [t.status for t in guard.tracked]
        gates = f"{states.count('pass')} pass · {states.count('not_evaluated')} pending"
        width = 24
        done = int(width * step / self.max_steps)
        bar = "█" * done + "·" * (width - done)
        sys.stderr.write(
            f"\r{bar} {step}/{self.max_steps} loss {loss:.4f} lr {lr:.2e} "
            f"{tps:,.0f} tok/s | gates {gates}   "
        )
        sys.stderr.flush()

    def note(self, text: str) -> None:
        if self.rank != 0:
            return
        if self.live:
            sys.stderr.write("\r" + " " * 100 + "\r")
        log.info(text)

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")


__all__ = [
    "MODE_DEFAULTS",
    "DataError",
    "PretrainConfig",
    "PretrainResult",
    "UsageError",
    "lr_at",
    "pretrain",
]
