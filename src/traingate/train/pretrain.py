"""The reference pretraining loop: a GPT on streamed text, with every contract enforced.

Read top to bottom: set up (device and ranks, run dir, where the weights start, data,
tokenizer, the resolved config, model and optimizer, Guard), restore a resumed run, then
train: forward, backward, clip (its norm feeds the gradient checks: no second pass), the
Guard's step check *before* the optimizer applies anything, validation every
``eval_every`` steps (an "epoch" for the contracts), atomic checkpoints, ONNX export at the
end. A violated ``abort`` invariant raises :class:`~traingate.InvariantViolation`; a violated
``stop`` invariant (C-TRAIN-CONVERGENCE's patience) ends the loop early after its validation,
with a checkpoint, and the end of the run (export, final point) follows as usual.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from traingate.files import atomic_write_text
from traingate.runtime.guard import Guard
from traingate.runtime.verdict import Verdict
from traingate.train.checkpoint import save_step_checkpoint, step_checkpoint_path
from traingate.train.config import PretrainConfig, RunConfig, resolve
from traingate.train.data import TokenStream
from traingate.train.header import run_header
from traingate.train.model import GPT
from traingate.train.progress import Progress, StopFlag, stop_on_signals
from traingate.train.setup import (
    Start,
    all_mean,
    build_model_and_optimizer,
    build_tokenizer,
    check_device,
    data_streams,
    init_distributed,
    lr_at,
    open_guard,
    open_run_dir,
    restore,
    rng_state,
    seed_everything,
    starting_point,
    text_source,
)

log = logging.getLogger("traingate.train")


@dataclass
class PretrainResult:
    """How a run ended, with the Guard's verdict and where things were written
    (``signum``: the signal that stopped an interrupted run; ``early_stopped``: a ``stop``
    invariant ended it early, its checkpoint saved and its final point judged)."""

    steps: int
    val_losses: list[float]
    train_losses: list[float]
    verdict: Verdict
    interrupted: bool = False
    early_stopped: bool = False
    signum: int | None = None
    onnx_path: Path | None = None
    onnx_max_abs_diff: float | None = None
    checkpoints: list[Path] = field(default_factory=list)


def pretrain(options: PretrainConfig) -> PretrainResult:
    """Run (or resume) a gated pretraining; raises InvariantViolation when a contract aborts."""
    # Setup: every default is resolved (RunConfig) before the loop starts.
    check_device(options.device)
    rank, world = init_distributed(options.device)
    start = starting_point(options)  # refuses an undeclared --mode before anything is written
    open_run_dir(options)
    seed_everything(options.seed)
    source = text_source(options)
    tokenizer = build_tokenizer(options, source, start)
    cfg = resolve(options, data=source.path, vocab_size=tokenizer.vocab_size)
    model, raw_model, optimizer = build_model_and_optimizer(cfg, start, world)
    stream, val = data_streams(cfg, source, tokenizer, rank, world)
    if rank == 0:  # what is trained, on what, before the first step
        for line in run_header(cfg, raw_model, tokenizer, source, world, options.vocab_size):
            log.info(line)
    tokens_per_step = cfg.batch_size * cfg.block_size * world
    result = PretrainResult(0, [], [], {})

    with open_guard(cfg) as guard:
        # a wrap of the train data is evidence (at the step whose batch starts the new pass)
        stream.on_cycle(lambda **fields: guard.record_event("data_cycled", step=step, **fields))
        step, epoch, result.val_losses = restore(start, raw_model, optimizer, stream, guard)
        write_config(cfg, start, guard, rank)
        progress, stop = Progress(cfg.max_steps, cfg.progress, rank), StopFlag()
        reached = any(v <= cfg.target_val_loss for v in result.val_losses)  # said once
        for item in guard.unevaluable:  # said now, not discovered at the verdict
            progress.note(f"warning: {item.message}")
        result.early_stopped = guard.should_stop  # a resumed run that stopped early stays so
        if result.early_stopped:
            progress.note(f"the run stopped early at step {step}: nothing to resume")
        with stop_on_signals(stop):
            while step < cfg.max_steps and not result.early_stopped:
                # The learning rate of this step: linear warm-up, then cosine decay.
                started = time.perf_counter()
                lr = lr_at(step, cfg.lr, cfg.warmup, cfg.max_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # Forward and backward; clipping returns the norm the gradient checks read.
                x, y = next(stream)
                with autocast(cfg.device):
                    _, loss = model(x.to(cfg.device), y.to(cfg.device))
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                tokens_per_sec = tokens_per_step / max(time.perf_counter() - started, 1e-9)

                # The Guard checks the step before the optimizer applies it: an abort raises
                # here and leaves the weights as the last good step left them.
                seen = guard.step(
                    step, loss=loss, grad_norm=grad_norm, lr=lr, tokens_per_sec=tokens_per_sec
                )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1

                # Logging: the loss the Guard saw (already on the host), on the bar or the log.
                result.train_losses.append(seen["loss"])
                progress.update(step, seen["loss"], lr, tokens_per_sec, guard)

                # Evaluation: every validation is an "epoch" of the contracts.
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    val_loss = evaluate(raw_model, val, cfg.device, rank, world, cfg.batch_size)
                    result.val_losses.append(val_loss)
                    guard.validation(epoch, val_loss=val_loss, step=step)
                    progress.note(f"epoch {epoch} (step {step}): val loss {val_loss:.4f}")
                    epoch += 1
                    if val_loss <= cfg.target_val_loss and not reached:
                        reached = True
                        progress.note(f"target val loss {cfg.target_val_loss} reached")
                    if guard.should_stop:  # a `stop` invariant (patience): end early, cleanly
                        result.early_stopped = True
                        progress.note(f"early stop at step {step}: {guard.stop_reason}")

                # Checkpointing: on schedule, at the end, when a signal asks to stop, and at an
                # early stop (rank 0 writes; every rank records the path).
                at_end = step == cfg.max_steps or result.early_stopped
                if step % cfg.checkpoint_every == 0 or at_end or stop.signum:
                    path = step_checkpoint_path(cfg.out / "checkpoints", step)
                    if rank == 0:
                        counters = {"step": step, "epoch": epoch, "val_losses": result.val_losses}
                        payload = checkpoint_payload(
                            cfg, start, raw_model, optimizer, stream, guard
                        )
                        save_step_checkpoint(
                            path.parent, step, {**payload, **counters}, keep=cfg.keep_checkpoints
                        )
                    result.checkpoints.append(path)
                if stop.signum:
                    result.interrupted, result.signum = True, stop.signum
                    guard.interrupted = stop.reason(step)
                    progress.note(
                        f"stopped by signal {stop.signum} at step {step}; checkpoint saved, "
                        "continue with --resume auto"
                    )
                    break
                if result.early_stopped:  # the end of the run follows: export, final point
                    break
        progress.close()
        result.steps = step

        # The end: the last val loss and (rank 0) the ONNX export's parity, judged once.
        if not result.interrupted:
            final: dict[str, float] = (
                {"val_loss": result.val_losses[-1]} if result.val_losses else {}
            )
            if cfg.export_onnx and rank == 0:
                from traingate.train.onnx_export import export_with_parity

                result.onnx_path = cfg.out / "model.onnx"
                result.onnx_max_abs_diff = export_with_parity(raw_model, result.onnx_path, val[0])
                final["onnx_max_abs_diff"] = result.onnx_max_abs_diff
            guard.final(**final)
    result.verdict = guard.close()
    return result


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
        with autocast(device):
            _, loss = model(x_all[sel].to(device), y_all[sel].to(device))
        total += loss.float() * len(sel)
    model.train()
    mean = total / max(1, len(idx))
    return float(all_mean(mean, world).item())


def autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; plain fp32 on CPU."""
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def checkpoint_payload(
    cfg: RunConfig,
    start: Start,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    stream: TokenStream,
    guard: Guard,
) -> dict[str, Any]:
    """Everything but the loop counters that an exact resume needs (and what ran, as JSON)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "stream": stream.state_dict(),
        "guard": json.dumps(guard.state_dict()),
        "rng": rng_state(),
        "config": json.dumps({**cfg.to_json(), **start.record()}),
        "contracts": json.dumps({c.contract: c.version for c in guard.contracts}),
        "model_config": json.dumps(asdict(model.config)),
    }


def write_config(cfg: RunConfig, start: Start, guard: Guard, rank: int) -> None:
    """``config.json``: the resolved settings, the regime and the contract versions enforced."""
    if rank != 0:
        return
    payload = {
        **cfg.to_json(),
        **start.record(),
        "regime": guard.regime.model_dump(),
        "contracts": {c.contract: c.version for c in guard.contracts},
    }
    atomic_write_text(cfg.out / "config.json", json.dumps(payload, indent=2) + "\n")
