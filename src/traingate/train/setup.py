"""Setting up a pretraining run, one helper per part, in the order :func:`pretrain` calls them:
device and ranks, the run dir, where the weights start, data and tokenizer, model and
optimizer, the learning-rate schedule, the Guard, and restoring a resumed run's state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from traingate.contract.modes import mode_row
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import load_valid
from traingate.contract.validation import discover
from traingate.runtime.guard import Guard
from traingate.runtime.planning import UnevaluableWarning
from traingate.train.checkpoint import latest_valid_checkpoint, load_checkpoint
from traingate.train.config import PretrainConfig, RunConfig, UsageError, enforced_contracts
from traingate.train.corpus import builtin_corpus_path
from traingate.train.data import TextSource, TokenStream, validation_set
from traingate.train.model import GPT, build_model
from traingate.train.tokenizer import ByteTokenizer, Tokenizer, load_tokenizer, train_bpe

log = logging.getLogger("traingate.train")

RUN_FILES = ("evidence.jsonl", "verdict.json", "checkpoints")


# -- device, ranks, run dir ----------------------------------------------------------------


def check_device(device: str) -> None:
    """Refuse ``--device cuda`` on a machine without one, before anything is written."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")


def init_distributed(device: str) -> tuple[int, int]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); (rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def all_mean(value: torch.Tensor, world: int) -> torch.Tensor:
    """``value`` averaged over the ranks (in place; unchanged in a single process)."""
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world
    return value


def open_run_dir(options: PretrainConfig) -> None:
    """Create the run dir; one that already holds a run is only continued with ``--resume``."""
    if not options.resume and any((options.out / name).exists() for name in RUN_FILES):
        raise UsageError(
            f"{options.out} already holds a run: continue it with --resume auto "
            "or choose another --out"
        )
    options.out.mkdir(parents=True, exist_ok=True)


# -- where the weights start -----------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Where a run's weights come from: its own newest valid checkpoint (``resume``), another
    run's checkpoint (``init``), or neither (a fresh, seeded initialisation)."""

    resume: tuple[Path, dict[str, Any]] | None = None
    init: tuple[Path, dict[str, Any]] | None = None

    def record(self) -> dict[str, str | None]:
        """The checkpoint the weights were initialised from, for config.json."""
        return {"init_from": str(self.init[0]) if self.init is not None else None}


def starting_point(options: PretrainConfig) -> Start:
    """Resume beats ``--init-from``; a finetune from neither is warned about (an undeclared
    ``--mode`` is refused here, before any data or tokenizer work)."""
    ckpt_dir = options.out / "checkpoints"
    resume = latest_valid_checkpoint(ckpt_dir) if options.resume else None
    if options.resume and resume is None:
        log.info("--resume auto: no valid checkpoint in %s, starting fresh", ckpt_dir)
    if resume is not None:
        return Start(resume=resume)
    if options.init_from is not None:
        return Start(init=(options.init_from, load_checkpoint(options.init_from)))
    if mode_row(enforced_contracts(options), options.mode).row.regime == "finetune":
        log.warning(
            "finetune without --init-from: the weights are random "
            "(INV-TRAIN-005 will judge the cold start)"
        )
    return Start()


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's RNGs (the model's initialisation draws from torch's)."""
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG state a checkpoint needs for an exact resume."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- data and tokenizer ----------------------------------------------------------------------


def text_source(options: PretrainConfig) -> TextSource:
    """The corpus of ``--data``, or the built-in stdlib-docstring one."""
    path = options.data if options.data is not None else builtin_corpus_path()
    return TextSource(path, column=options.text_column)


def build_tokenizer(options: PretrainConfig, source: TextSource, start: Start) -> Tokenizer:
    """Resume → the run's tokenizer; --init-from → the checkpoint's; else build one."""
    tok_dir = options.out / "tokenizer"
    if start.resume is not None and tok_dir.is_dir():
        return load_tokenizer(tok_dir)
    if start.init is not None:
        ckpt = start.init[0]
        found = [
            p for p in (ckpt.parent / "tokenizer", ckpt.parent.parent / "tokenizer") if p.is_dir()
        ]
        if not found:
            raise UsageError(
                f"{ckpt}: no tokenizer/ folder beside the checkpoint or in its run dir"
            )
        tokenizer = load_tokenizer(found[0])
    elif options.tokenizer == "bpe":
        if options.vocab_size is None:
            raise UsageError("--tokenizer bpe needs --vocab-size N")
        log.info("training a BPE tokenizer with %d tokens on the train split", options.vocab_size)
        texts = source.texts("train", options.val_percent)
        tokenizer = train_bpe(texts, options.vocab_size, fixed_size=options.pad_vocab)
        if options.pad_vocab:
            log.info(
                "vocab: %d ids kept (--pad-vocab), whatever the corpus learns", options.vocab_size
            )
        elif tokenizer.vocab_size < options.vocab_size:
            log.info(
                "vocab: asked %d, learned %d; the model uses %d",
                options.vocab_size,
                tokenizer.vocab_size,
                tokenizer.vocab_size,
            )
    else:
        if options.vocab_size not in (None, ByteTokenizer().vocab_size):
            raise UsageError("--vocab-size only applies to --tokenizer bpe (bytes have 257 tokens)")
        tokenizer = ByteTokenizer()
    tokenizer.save(tok_dir)
    return tokenizer


def data_streams(
    cfg: RunConfig, source: TextSource, tokenizer: Tokenizer, rank: int, world: int
) -> tuple[TokenStream, tuple[torch.Tensor, torch.Tensor]]:
    """This rank's endless training batches, and the fixed validation blocks every rank sees."""
    stream = TokenStream(
        source,
        tokenizer,
        cfg.batch_size,
        cfg.block_size,
        val_percent=cfg.val_percent,
        rank=rank,
        world_size=world,
    )
    val = validation_set(source, tokenizer, cfg.block_size, cfg.eval_blocks, cfg.val_percent)
    return stream, val


# -- model, optimizer, schedule --------------------------------------------------------------


def build_model_and_optimizer(
    cfg: RunConfig, start: Start, world: int
) -> tuple[nn.Module, GPT, torch.optim.Optimizer]:
    """(model to train: DDP-wrapped on several ranks, the bare GPT, its AdamW); ``--init-from``
    weights are loaded here, a resumed run's after the Guard opens (:func:`restore`)."""
    raw_model = build_model(cfg.model, cfg.vocab_size, cfg.block_size)
    if start.init is not None:
        raw_model.load_state_dict(start.init[1]["model"])
    raw_model.to(cfg.device)
    model: nn.Module = raw_model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(raw_model)
    return model, raw_model, raw_model.configure_optimizer(cfg.lr)


def lr_at(step: int, lr_max: float, warmup: int, max_steps: int) -> float:
    """Linear warm-up to ``lr_max``, then cosine decay to 10 % of it at ``max_steps``."""
    if step < warmup:
        return lr_max * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return lr_max * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


# -- the Guard and a resumed run's state -----------------------------------------------------


# settings a resumed run must keep (with the contracts, regime and params the Guard records);
# max_steps may grow (train longer), the rest would make it another run
RESUME_KEEPS = (
    "mode",
    "data",
    "text_column",
    "model",
    "tokenizer",
    "block_size",
    "batch_size",
    "seed",
    "lr",
    "warmup",
    "target_val_loss",
)


def run_params(cfg: RunConfig) -> dict[str, float]:
    """The run parameters the Guard gets: ``vocab_size`` and ``target_val_loss`` (the final
    target of C-TRAIN-CONVERGENCE), each where an enforced contract declares it (the Guard
    refuses a parameter no contract declares)."""
    declared = {name for f in discover(list(cfg.contracts)) for name in load_valid(f).parameters}
    values = {"vocab_size": float(cfg.vocab_size), "target_val_loss": cfg.target_val_loss}
    return {name: value for name, value in values.items() if name in declared}


def open_guard(cfg: RunConfig) -> Guard:
    """The Guard of ``cfg``'s contracts, in the regime of the mode's row, writing to the run dir."""
    regime = FromScratch(cfg.vocab_size) if cfg.regime == "from_scratch" else Finetune()
    with warnings.catch_warnings():  # the loop prints guard.unevaluable as notes instead
        warnings.simplefilter("ignore", UnevaluableWarning)
        return Guard(
            list(cfg.contracts),
            only=list(cfg.only) or None,
            regime=regime,
            params=run_params(cfg),
            run_dir=cfg.out,
            summary_every=cfg.eval_every,
            config={name: cfg.to_json()[name] for name in RESUME_KEEPS},
            resume=cfg.resume,
            allow_config_change=cfg.allow_config_change,
            max_steps=cfg.max_steps,
            max_validations=math.ceil(cfg.max_steps / cfg.eval_every),  # each eval_every, the last
            reference=cfg.reference,
        )


def restore(
    start: Start,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    stream: TokenStream,
    guard: Guard,
) -> tuple[int, int, list[float]]:
    """Load a resumed run's state into the parts; (step, epoch, val losses so far)."""
    if start.resume is None:
        return 0, 0, []
    path, payload = start.resume
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    stream.load_state_dict(payload["stream"])
    guard.load_state_dict(json.loads(payload["guard"]))
    set_rng_state(payload["rng"])
    step, epoch = int(payload["step"]), int(payload["epoch"])
    log.info("resumed from %s at step %d", path, step)
    return step, epoch, list(payload["val_losses"])
