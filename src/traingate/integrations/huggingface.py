"""traingate inside a Hugging Face ``Trainer``: a ``TrainerCallback`` that feeds a Guard.

::

    gate = TraingateCallback(regime=FromScratch(vocab_size=50257), run_dir="runs/x")
    trainer = gate.attach(Trainer(model=model, args=args, train_dataset=train, eval_dataset=val))
    trainer.train()  # verdict.json on every exit path; resume_from_checkpoint= resumes the tallies

What the Guard needs and where it comes from (transformers 4.57):

- **The step's loss**, accumulation-correct: the sum of what ``Trainer.training_step``
  returns over the step's micro-batches. ``training_step`` already divides each micro-batch
  loss by the accumulation count (or normalises by ``num_items_in_batch``), so the sum is
  the mean of the micro-batch losses, the number the Trainer itself logs as ``loss``. No
  callback hook receives it, so :meth:`TraingateCallback.attach` wraps the trainer's
  ``training_step`` (the method the Trainer documents for overriding). The sum stays on
  device: the Guard's one host transfer per step is the only sync added.
- **The pre-clip gradient norm.** The Trainer clips before ``on_pre_optimizer_step``, so a
  norm measured there is post-clip (at most ``max_grad_norm``: an exploding gradient would
  look healthy). ``attach`` therefore wraps the trainer's ``accelerator.clip_grad_norm_``
  and keeps what it returns: the total norm *before* clipping, which accelerate computes
  correctly for DDP, FSDP1 (``model.clip_grad_norm_``), FSDP2/TP (DTensor-aware) and fp16
  (it unscales first). The alternatives are worse: clipping in the callback with
  ``max_grad_norm=0`` would make users change their arguments and re-implement
  accelerate's FSDP/unscale logic; reading the logged ``grad_norm`` comes after the
  optimizer step. With clipping off (``max_grad_norm=0``) nothing is clipped, so the
  callback measures the norm itself in ``on_pre_optimizer_step``
  (:func:`traingate.runtime.host.total_grad_norm`, unscaling fp16 gradients
  first). Not covered: DeepSpeed (its engine clips inside its own step, and
  ``accelerator.clip_grad_norm_`` returns ``None`` there): the Guard then gets the norm the
  callback measures, which under ZeRO is the local shard's.
- **Before the optimizer.** ``guard.step`` runs in ``on_pre_optimizer_step``: in the
  default ``on_violation="raise"`` an abort raises ``InvariantViolation`` out of
  ``trainer.train()`` before ``optimizer.step()``. ``on_violation="stop"`` instead sets
  ``control.should_training_stop`` (the Trainer ends the loop and runs ``on_train_end``,
  the other callbacks, logging) and drops the violating step's gradients
  (``p.grad = None``), so the optimizer leaves every weight as it was.
- **fp16 overflow.** With a ``GradScaler`` (fp16 on an accelerator), a step whose
  gradients overflow but whose loss is finite is skipped by the scaler, not applied; the
  callback records it as a skip (its loss, ``overflow_skipped=1``, no gradient norm) rather
  than a violation, unless more than ``max_overflow_skips`` such steps come in a row, when
  the step reaches the Guard whole and INV-TRAIN-001 aborts. Without an enabled scaler
  (CPU, bf16, fp32, ``GradScaler(enabled=False)``) a non-finite norm is a violation.
- **Every exit path writes the verdict.** ``on_train_end`` writes it after a normal end or
  a stop; the Trainer does not call it when ``train()`` raises, so ``attach`` wraps
  ``trainer.train`` and closes the Guard in its ``except``: after an exception (including
  ``InvariantViolation``, recorded as an abort, not a crash) and after ``KeyboardInterrupt``
  (recorded as an interruption). Without ``attach``, call :meth:`close` in a ``finally``.
- **Checkpoints.** ``on_save`` writes ``guard.state_dict()`` to
  ``checkpoint-N/traingate_state.json`` (world process zero); ``train(resume_from_checkpoint=…)``
  rebuilds the Guard with ``resume=True`` and loads it, so tallies continue.
- **Validation.** ``on_evaluate`` calls ``guard.validation(k, val_loss=metrics["eval_loss"])``
  with ``k`` counting evaluations from 0 (not the training epoch). When a ``stop``
  invariant (C-TRAIN-CONVERGENCE's patience) asks for it (``guard.should_stop``), it sets
  ``control.should_training_stop``: the run ends early and cleanly, its verdict records the
  early stop and no violation is raised. ``on_train_end`` hands the last ``eval_loss`` to
  ``guard.final``, so a final target (INV-CONV-002, ``params={"target_val_loss": …}``) is
  judged on it.
- **Logs.** Each limit the Guard draws and each invariant's violation count go into the
  next ``on_log`` as ``traingate/limit/INV-…`` and ``traingate/violations/INV-…`` (the
  callback runs ahead of the reporting callbacks, so W&B/TensorBoard/MLflow see them); at
  the end ``state.log_history`` gets ``traingate/ok`` and ``traingate/status/INV-…``.

The Guard is built in ``on_train_begin``, after accelerate has set up ``torch.distributed``,
so it sees the real world size and all-reduces its decisions across ranks.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from traingate.integrations import missing_extra

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ModuleNotFoundError as exc:  # the framework is an extra: say which
    raise missing_extra(exc, "huggingface", "hf") from exc

from traingate.files import atomic_write_text
from traingate.integrations.overflow import OverflowSkips, enabled_scaler
from traingate.runtime.guard import Guard, GuardEvent, InvariantViolation
from traingate.runtime.host import total_grad_norm
from traingate.runtime.verdict import Verdict

__all__ = ["STATE_FILE", "TraingateCallback"]

log = logging.getLogger("traingate")

STATE_FILE = "traingate_state.json"
OnViolation = Literal["raise", "stop"]


class TraingateCallback(TrainerCallback):
    """Enforces traingate contracts inside a ``transformers.Trainer`` and records a verdict.

    Args:
        contracts: the Guard's contract files or folders (default: the shipped contracts).
        on_violation: ``"raise"`` (default) raises ``InvariantViolation`` out of
            ``trainer.train()`` before the optimizer step; ``"stop"`` drops that step's
            update and ends training through ``control.should_training_stop``.
        max_overflow_skips: consecutive fp16 overflow steps (GradScaler skips) tolerated as
            skips before the next one reaches the Guard as a non-finite step.
        guard_kwargs: the Guard's own keyword arguments (``regime``, ``params``,
            ``run_dir``, ``only``, ``summary_every``, ``config``, ``listeners``,
            ``max_steps``, ``max_validations``, ``allow_config_change``); ``max_steps``
            defaults to the Trainer's, ``max_validations`` to what the eval schedule implies.
    """

    def __init__(
        self,
        contracts: Any = None,
        *,
        on_violation: OnViolation = "raise",
        max_overflow_skips: int = 3,
        **guard_kwargs: Any,
    ) -> None:
        if on_violation not in ("raise", "stop"):
            raise ValueError(f"on_violation must be 'raise' or 'stop', not {on_violation!r}")
        if "resume" in guard_kwargs:
            raise TypeError("resume is decided by train(resume_from_checkpoint=...)")
        self.contracts = contracts
        self.on_violation: OnViolation = on_violation
        self.skips = OverflowSkips(max_overflow_skips)
        self.guard_kwargs = guard_kwargs
        self.guard: Guard | None = None
        self.verdict: Verdict | None = None
        self.violation: InvariantViolation | None = None
        self.trainer: Any = None
        self.validations = 0
        self._val_loss: float | None = None  # the last evaluation's eval_loss, for final()
        self._loss: Any = None  # this optimizer step's loss so far (on device)
        self._grad_norm: Any = None  # what the Trainer's clipping returned this step
        self._resume_from: str | None = None
        self._pending: dict[str, float] = {}
        self._violations: Counter[str] = Counter()

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, trainer: Any) -> Any:
        """Hook ``trainer`` (loss, pre-clip norm, verdict on every exit) and add this callback
        ahead of its reporting callbacks; returns ``trainer``."""
        if self.trainer is trainer:
            return trainer
        if self.trainer is not None:
            raise RuntimeError("this TraingateCallback is already attached to another Trainer")
        self.trainer = trainer
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        flow = [i for i, c in enumerate(callbacks) if type(c).__name__ == "DefaultFlowCallback"]
        callbacks.insert(flow[0] + 1 if flow else 0, self)
        trainer.training_step = self._wrap_training_step(trainer.training_step)
        accelerator = trainer.accelerator
        accelerator.clip_grad_norm_ = self._wrap_clip(accelerator.clip_grad_norm_)
        trainer.train = self._wrap_train(trainer.train)
        return trainer

    def _wrap_training_step(self, training_step: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            loss = training_step(*args, **kwargs)
            self._loss = loss if self._loss is None else self._loss + loss
            return loss

        return wrapped

    def _wrap_clip(self, clip: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self._grad_norm = norm = clip(*args, **kwargs)
            return norm

        return wrapped

    def _wrap_train(self, train: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            resume = kwargs.get("resume_from_checkpoint", args[0] if args else None)
            self._resume_from = resume if isinstance(resume, str) else None
            try:
                return train(*args, **kwargs)
            except BaseException as exc:
                self.close(exc)
                raise

        return wrapped

    # -- the Guard's life --------------------------------------------------------------------

    def _build(self, args: TrainingArguments, state: TrainerState) -> Guard:
        """A fresh Guard, or one resumed from the checkpoint the Trainer resumed from."""
        kwargs = dict(self.guard_kwargs)
        kwargs.setdefault("max_steps", state.max_steps if state.max_steps > 0 else None)
        kwargs.setdefault("max_validations", _planned_validations(args, state))
        kwargs["listeners"] = [*kwargs.get("listeners", ()), self._on_event]
        saved = None
        if state.global_step > 0:
            ckpt = self._resume_from or str(
                Path(args.output_dir) / f"checkpoint-{state.global_step}"
            )
            path = Path(ckpt) / STATE_FILE
            if path.is_file():
                saved = json.loads(path.read_text(encoding="utf-8"))
            else:
                log.warning("traingate: %s has no %s; the Guard starts fresh", ckpt, STATE_FILE)
        guard = Guard(self.contracts, resume=saved is not None, **kwargs)
        if saved is not None:
            guard.load_state_dict(saved)
            self.validations = 0 if guard.epoch is None else guard.epoch + 1
        return guard

    def close(self, error: BaseException | None = None) -> Verdict | None:
        """Write the verdict now (``error``: what ended the run); ``attach`` and
        ``on_train_end`` call it, so call it yourself only in a ``finally`` without
        ``attach``. Returns the verdict, or ``None`` before training began."""
        guard = self.guard
        if guard is None:
            return None
        if guard.closed is not None:
            return guard.closed
        if isinstance(error, KeyboardInterrupt):
            guard.interrupted = f"interrupted by KeyboardInterrupt at step {guard.last_step}"
            error = None
        self.verdict = verdict = guard.close(error or self.violation)
        state = getattr(self.trainer, "state", None)
        if state is not None:
            end: dict[str, Any] = {"traingate/ok": float(verdict.ok), "step": state.global_step}
            end.update({f"traingate/status/{i}": r.status for i, r in verdict.invariants.items()})
            state.log_history.append(end)
        return verdict

    def _violated(self, violation: InvariantViolation, control: TrainerControl) -> None:
        """Raise, or (``stop``) end training through the Trainer's control flags."""
        self.violation = violation
        if self.on_violation == "raise":
            raise violation
        log.error("traingate: stopping training: %s", violation)
        control.should_training_stop = True

    def _active(self) -> Guard | None:
        guard = self.guard
        return guard if guard is not None and guard.closed is None else None

    # -- Trainer hooks -----------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Build (or resume) the Guard, now that distributed setup is done."""
        if self.trainer is None:
            raise RuntimeError(
                "TraingateCallback needs the Trainer: use trainer = callback.attach(Trainer(...))"
            )
        self.guard, self.verdict, self.violation = None, None, None
        self.validations, self.skips.count = 0, 0
        self._loss = self._grad_norm = self._val_loss = None
        self.guard = self._build(args, state)

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Judge the step (loss, pre-clip norm) before ``optimizer.step()`` applies it."""
        guard = self._active()
        loss, norm = self._loss, self._grad_norm
        self._loss = self._grad_norm = None
        if guard is None or loss is None or self.violation is not None:
            return
        model = kw.get("model")
        scaler = enabled_scaler(getattr(self.trainer.accelerator, "scaler", None))
        if norm is None and model is not None:  # the Trainer did not clip: nothing is clipped
            if scaler is not None:
                self.trainer.accelerator.unscale_gradients()
            norm = total_grad_norm(model.parameters())
        try:
            guard.step(state.global_step, **self.skips.step_observations(loss, norm, scaler))
        except InvariantViolation as violation:
            if model is not None:  # drop the update: the optimizer skips params without grad
                for p in model.parameters():
                    p.grad = None
            self._violated(violation, control)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Feed the evaluation's ``eval_loss`` to ``guard.validation`` (k-th evaluation)."""
        guard = self._active()
        if guard is None or self.violation is not None:
            return
        metrics: Mapping[str, Any] = kw.get("metrics") or {}
        index, self.validations = self.validations, self.validations + 1
        if metrics.get("eval_loss") is not None:
            self._val_loss = float(metrics["eval_loss"])
        try:
            guard.validation(index, val_loss=metrics.get("eval_loss"))
        except InvariantViolation as violation:
            self._violated(violation, control)
            return
        if guard.should_stop:  # a `stop` invariant (patience): the Trainer ends cleanly
            control.should_training_stop = True

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Write the Guard's state into the checkpoint the Trainer just saved (rank 0 writes)."""
        guard = self._active()
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if guard is not None and state.is_world_process_zero and ckpt.is_dir():
            atomic_write_text(ckpt / STATE_FILE, json.dumps(guard.state_dict()))

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Add the limits and violation counts recorded since the last log to this one."""
        logs = kw.get("logs")
        if logs is None or not self._pending:
            return
        logs.update(self._pending)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self._pending)
        self._pending = {}

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Run the final-point invariants and write the verdict."""
        guard = self._active()
        if guard is None:
            return
        if self.violation is None:
            try:  # the last val loss: a final target (INV-CONV-002) is judged on it
                guard.final(**({} if self._val_loss is None else {"val_loss": self._val_loss}))
            except InvariantViolation as violation:
                self.violation = violation
                self.close()
                if self.on_violation == "raise":
                    raise
        self.close()

    def _on_event(self, event: GuardEvent) -> None:
        """Keep what the next ``on_log`` reports (rank 0 hears the Guard's events)."""
        if event.kind == "metrics":
            for key, value in event.data.items():
                if key.startswith("limit/"):
                    self._pending[f"traingate/{key}"] = float(value)
        elif event.kind in ("violation", "warning"):
            inv = str(event.data.get("invariant"))
            self._violations[inv] += 1
            self._pending[f"traingate/violations/{inv}"] = float(self._violations[inv])


def _planned_validations(args: TrainingArguments, state: TrainerState) -> int | None:
    """How many evaluations the schedule implies (``None`` where it cannot be told)."""
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    start = 1 if getattr(args, "eval_on_start", False) else 0
    if strategy == "no":
        return start
    steps = args.eval_steps or args.logging_steps
    if strategy == "steps" and state.max_steps > 0 and isinstance(steps, int) and steps >= 1:
        return start + state.max_steps // steps
    return None
