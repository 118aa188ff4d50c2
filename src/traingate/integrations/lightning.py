"""Lightning adapter: a ``lightning.pytorch.Callback`` that runs a :class:`~traingate.Guard`.

::

    from traingate.integrations.lightning import TraingateCallback

    gate = TraingateCallback(regime=FromScratch(vocab_size=50257), run_dir="runs/x")
    Trainer(callbacks=[gate], gradient_clip_val=1.0).fit(model)  # model logs "val_loss"

Where each observation comes from:

- **step**: ``on_before_optimizer_step``, which Lightning runs after the closure (forward +
  backward) and *before* gradient clipping and ``optimizer.step()``. The gradient norm is
  the total L2 norm of the module's gradients there, so it is the pre-clip norm (unscaled
  under 16-bit AMP). The loss is the sum of the losses Lightning passed to
  ``on_before_backward`` since the previous optimizer step: in automatic optimization
  Lightning divides each micro-batch loss by ``accumulate_grad_batches`` before backward,
  so the sum is the mean loss of the optimizer step (accumulation-correct); under 16-bit
  AMP the GradScaler's scale is divided out. The step index is ``trainer.global_step``.
- **validation**: ``on_validation_end`` (after every epoch-end metric, including one the
  module logs in its own ``on_validation_epoch_end``, has reached
  ``trainer.callback_metrics``), reading the metric ``val_metric`` (default ``"val_loss"``).
  The sanity check is skipped; the index is the number of real validation runs so far.
- **final**: ``on_fit_end`` hands every scalar in ``trainer.callback_metrics`` to
  ``guard.final(...)``.

A violation either raises :class:`~traingate.InvariantViolation` (``on_violation="raise"``,
the default; a step violation raises inside ``optimizer.step`` before the update) or stops
gracefully (``"stop"``): the step's gradients are dropped (set to ``None``, so the optimizer
leaves every weight as it was) and ``trainer.should_stop`` is set, so checkpoint callbacks
still run. The verdict is written on every exit path: ``on_fit_end``/``teardown``,
``on_exception`` (a ``KeyboardInterrupt`` is recorded as an interruption), closing once.

Resume: the callback's ``state_dict`` carries ``guard.state_dict()`` (as JSON text) and the
validation count in the ``.ckpt``; ``fit(ckpt_path=...)`` into the same ``run_dir``
continues the tallies. Logging goes to ``trainer.loggers`` (rank 0): ``traingate/violations``,
``traingate/evaluations``, ``traingate/limit/<ID>``, ``traingate/observed/<ID>`` every
``log_every_n_steps`` steps, at each validation and on a violation; ``traingate/ok`` and
``traingate/status/<ID>`` (:data:`STATUS_CODES`) at the end.

Limits: the gradient norm is the norm of the gradients this process holds, which is the
global norm under DDP but a shard's under FSDP/DeepSpeed; under 16-bit AMP the GradScaler's
own inf/NaN steps (which it skips) still trip a ``finite`` invariant; a crash inside a
``ddp_spawn`` worker reaches neither ``on_exception`` nor ``teardown`` in that worker, so
its run dir keeps its evidence but gets no verdict (``contracts check`` then fails it).
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ModuleNotFoundError as exc:  # the framework is an extra: say which
    raise ModuleNotFoundError(
        f"{exc}: traingate.integrations.lightning needs the 'lightning' extra: "
        "pip install 'traingate[lightning]'",
        name=exc.name,
    ) from exc

from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.rundir import holds_run
from traingate.runtime.verdict import Verdict

__all__ = ["STATUS_CODES", "TraingateCallback"]

# How an invariant's status is logged (loggers take numbers): traingate/status/<ID>.
STATUS_CODES: dict[str, float] = {"not_evaluated": -1.0, "pass": 0.0, "warn": 1.0, "fail": 2.0}

_GUARD_KWARGS = frozenset(inspect.signature(Guard.__init__).parameters) - {"self", "contracts"}


class TraingateCallback(Callback):
    """Enforces traingate contracts inside ``Trainer.fit`` and writes the run's evidence.

    Args:
        contracts: contract files or folders (default: the shipped contracts).
        on_violation: ``"raise"`` an :class:`~traingate.InvariantViolation` (default) or
            ``"stop"`` the run with ``trainer.should_stop`` after dropping the bad step.
        val_metric: the logged metric handed to the Guard as ``val_loss`` at each validation.
        resume: continue the run ``run_dir`` holds; ``None`` (default) resumes exactly when
            ``fit`` is given a ``ckpt_path``.
        log_every_n_steps: log the Guard's limits and violation count every N steps
            (default: the trainer's ``log_every_n_steps``); every validation and the end are
            logged too.
        **guard_kwargs: the Guard's own keyword arguments (``regime``, ``params``,
            ``run_dir``, ``only``, ``summary_every``, ``config``, ``allow_config_change``,
            ``max_steps``, ``max_validations``). ``max_steps`` defaults to the trainer's.
    """

    def __init__(
        self,
        contracts: Sequence[str | Path] | None = None,
        *,
        on_violation: Literal["raise", "stop"] = "raise",
        val_metric: str = "val_loss",
        resume: bool | None = None,
        log_every_n_steps: int | None = None,
        **guard_kwargs: Any,
    ) -> None:
        unknown = sorted(set(guard_kwargs) - _GUARD_KWARGS)
        if unknown:
            raise TypeError(
                f"TraingateCallback got unknown Guard argument(s) {unknown}; "
                f"the Guard takes {sorted(_GUARD_KWARGS)}"
            )
        if "resume" in guard_kwargs:
            raise TypeError("pass resume= as TraingateCallback's own argument")
        if on_violation not in ("raise", "stop"):
            raise ValueError(f"on_violation must be 'raise' or 'stop', not {on_violation!r}")
        self.contracts = list(contracts) if contracts is not None else None
        self.on_violation = on_violation
        self.val_metric = val_metric
        self.resume = resume
        self.log_every_n_steps = log_every_n_steps
        self.guard_kwargs = dict(guard_kwargs)
        self.guard: Guard | None = None
        self.verdict: Verdict | None = None  # what the Guard wrote when it closed
        self.validations = 0  # real validation runs fed to the Guard so far
        self.stopped_by: InvariantViolation | None = None  # the violation "stop" acted on
        self._loss: Any = None  # summed (normalised) losses since the last optimizer step
        self._deferred = False  # the Guard waits for a checkpoint's state (see setup)
        self._max_steps = -1
        self._logged_violations = 0

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint (its run dir tells two apart)."""
        return self._generate_state_key(run_dir=str(self.guard_kwargs.get("run_dir")))

    # -- building and closing --------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Build the Guard once the process group exists (``fit`` only), so ranks agree.

        With ``resume=None`` and a run dir that already holds a run, the Guard is built when
        the checkpoint's state arrives (``load_state_dict``, after ``setup``), resuming the
        run; if no state arrives by the sanity check or the first batch, it is built without
        ``resume`` and refuses the run dir.
        """
        if stage != "fit" or (self.guard is not None and self.guard.closed is None):
            return
        self.guard, self._max_steps = None, trainer.max_steps
        run_dir = self.guard_kwargs.get("run_dir")
        self._deferred = self.resume is None and run_dir is not None and holds_run(Path(run_dir))
        if not self._deferred:
            self._build(resume=bool(self.resume))

    def _build(self, *, resume: bool) -> Guard:
        kwargs = dict(self.guard_kwargs)
        if "max_steps" not in kwargs and self._max_steps > 0:
            kwargs["max_steps"] = self._max_steps
        self._deferred = False
        self.guard = Guard(self.contracts, resume=resume, **kwargs)
        self.verdict, self.stopped_by, self._loss = None, None, None
        self.validations = self._logged_violations = 0
        return self.guard

    def _build_deferred(self) -> None:
        if self._deferred:
            self._build(resume=False)  # no checkpoint state arrived: refuse a used run dir

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Build a deferred Guard (every checkpoint restore has happened by now)."""
        self._build_deferred()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Build a deferred Guard (every checkpoint restore has happened by now)."""
        self._build_deferred()

    def _close(self, trainer: Trainer, error: BaseException | None = None) -> None:
        guard = self.guard
        if guard is None or guard.closed is not None:
            return
        self.verdict = guard.close(error)
        metrics = {"traingate/ok": float(self.verdict.ok), **self._tallies(guard)}
        metrics.update(
            {f"traingate/status/{t.invariant.id}": STATUS_CODES[t.status] for t in guard.tracked}
        )
        _log(trainer, metrics)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run the final-point invariants on the logged metrics, then write the verdict."""
        guard = self.guard
        if guard is None or guard.closed is not None:
            return
        final = {
            k: v
            for k, v in trainer.callback_metrics.items()
            if k.isidentifier() and k not in ("step", "epoch")
        }
        try:
            guard.final(**final)
        except InvariantViolation as violation:
            self._close(trainer)
            if self.on_violation == "raise":
                raise
            self.stopped_by = violation
        self._close(trainer)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Backstop: write the verdict if no other hook did (closing is idempotent)."""
        if stage == "fit":
            self._close(trainer)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Write the verdict of a run an exception ended (KeyboardInterrupt: interrupted)."""
        guard = self.guard
        if guard is None or guard.closed is not None:
            return
        if isinstance(exception, KeyboardInterrupt):
            step = guard.last_step
            where = "before the first step" if step is None else f"at step {step}"
            guard.interrupted = f"interrupted by KeyboardInterrupt {where}"
            self._close(trainer)
        else:
            self._close(trainer, exception)

    # -- observations ----------------------------------------------------------------------

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Any) -> None:
        """Add the micro-batch's (normalised) loss to the optimizer step's loss."""
        if self.guard is None:
            return
        loss = loss.detach()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            loss = loss / scaler.get_scale()  # pre_backward scaled it before this hook
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Any
    ) -> None:
        """Check the step before clipping and ``optimizer.step()`` can use its gradients."""
        guard, loss, self._loss = self.guard, self._loss, None
        if guard is None or guard.closed is not None or loss is None or self.stopped_by:
            return
        step = trainer.global_step
        violation = None
        try:
            guard.step(step, loss=loss, model=pl_module)
        except InvariantViolation as caught:
            if self.on_violation == "raise":
                self._log_step(trainer, guard, step, force=True)
                raise
            violation = caught
        # the Guard's all-reduce already agrees; the strategy makes the stop collective too
        if (
            self.on_violation == "stop"
            and trainer.world_size > 1
            and trainer.strategy.reduce_boolean_decision(violation is not None, all=False)
        ):
            violation = violation or _agreed(guard)
        if violation is not None:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # the optimizer skips a parameter without a gradient
            self._stop(trainer, violation)
        self._log_step(trainer, guard, step, force=violation is not None)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Feed the validation metric (sanity check excluded) as validation N of the run."""
        guard = self.guard
        if guard is None or guard.closed is not None or trainer.sanity_checking:
            return
        if self.stopped_by is not None:
            return  # "stop" acted on a violation; Lightning may still validate once
        value = trainer.callback_metrics.get(self.val_metric)
        if value is None:
            warnings.warn(
                f"traingate: validation metric {self.val_metric!r} was not logged (logged: "
                f"{sorted(trainer.callback_metrics)}); log it in validation_step with "
                f"self.log({self.val_metric!r}, loss) or pass val_metric=",
                stacklevel=2,
            )
        index, self.validations = self.validations, self.validations + 1
        try:
            guard.validation(index, val_loss=value)
        except InvariantViolation as violation:
            if self.on_violation == "raise":
                self._log_validation(trainer, guard)
                raise
            self._stop(trainer, violation)
        self._log_validation(trainer, guard)

    def _stop(self, trainer: Trainer, violation: InvariantViolation) -> None:
        self.stopped_by = violation
        trainer.should_stop = True
        warnings.warn(f"traingate: stopping the run: {violation}", stacklevel=3)

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The Guard's state (as JSON text) and the validation count, for the ``.ckpt``."""
        if self.guard is None:
            return {}
        return {"guard": json.dumps(self.guard.state_dict()), "validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the tallies a checkpoint carries (Lightning calls it after ``setup``)."""
        if not state_dict:
            return
        guard = self._build(resume=True) if self._deferred else self.guard
        if guard is None or guard.closed is not None:
            raise RuntimeError("traingate: a checkpoint's state arrived before setup('fit')")
        self._restore(state_dict)

    def _restore(self, state: Mapping[str, Any]) -> None:
        assert self.guard is not None
        self.guard.load_state_dict(json.loads(state["guard"]))
        self.validations = int(state["validations"])
        self._logged_violations = sum(t.violations for t in self.guard.tracked)

    # -- logging ---------------------------------------------------------------------------

    def _tallies(self, guard: Guard) -> dict[str, float]:
        return {
            "traingate/violations": float(sum(t.violations for t in guard.tracked)),
            "traingate/evaluations": float(sum(t.evaluations for t in guard.tracked)),
        }

    def _limits(self, guard: Guard, point: str) -> dict[str, float]:
        out = {}
        for t in guard.by_point[point]:
            last = t.last or {}
            for key in ("limit", "observed"):
                value = last.get(key)
                if isinstance(value, int | float) and math.isfinite(value):
                    out[f"traingate/{key}/{t.invariant.id}"] = float(value)
        return out

    def _log_step(self, trainer: Trainer, guard: Guard, step: int, *, force: bool) -> None:
        every = self.log_every_n_steps or trainer.log_every_n_steps or 1
        violations = sum(t.violations for t in guard.tracked)
        if force or violations != self._logged_violations or step % every == 0:
            self._logged_violations = violations
            _log(trainer, {**self._tallies(guard), **self._limits(guard, "step")})

    def _log_validation(self, trainer: Trainer, guard: Guard) -> None:
        self._logged_violations = sum(t.violations for t in guard.tracked)
        _log(trainer, {**self._tallies(guard), **self._limits(guard, "validation")})


def _agreed(guard: Guard) -> InvariantViolation:
    """The violation another rank reported, as this rank's Guard recorded it."""
    if guard.aborted_by is not None:
        return InvariantViolation(guard.aborted_by)
    raise RuntimeError("traingate: a rank stopped on a violation this rank's Guard never saw")


def _log(trainer: Trainer, metrics: Mapping[str, float]) -> None:
    """Hand metrics to every logger of the trainer (rank 0; loggers need not be set)."""
    if not metrics or not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)
