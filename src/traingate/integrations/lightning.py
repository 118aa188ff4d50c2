"""Lightning adapter: a ``lightning.pytorch.Callback`` that runs a :class:`~traingate.Guard`.

::

    from traingate.integrations.lightning import TraingateCallback

    gate = TraingateCallback(regime=FromScratch(vocab_size=50257), run_dir="runs/x")
    Trainer(callbacks=[gate], gradient_clip_val=1.0).fit(model)  # model logs "val_loss"

Where each observation comes from:

- **step**: ``on_before_optimizer_step``, which Lightning runs after the closure (forward +
  backward) and *before* gradient clipping and ``optimizer.step()``. The gradient norm is
  the total L2 norm of the whole model's gradients there, so it is the pre-clip norm
  (unscaled under 16-bit AMP). Under a strategy that shards the parameters it is still the
  whole model's: FSDP1 (``FSDPStrategy``, except ``NO_SHARD``) holds disjoint plain-tensor
  shards, whose ``|g|^2`` sums are all-reduced
  (:func:`~traingate.integrations.grad_norm.sharded_grad_norm`); ``ModelParallelStrategy``
  (FSDP2, tensor parallelism) holds ``DTensor`` gradients, reduced over their mesh, and
  replicated plain ones, counted once. The loss is the sum of the losses Lightning passed to
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
- **early stop**: when a ``stop`` invariant (C-TRAIN-CONVERGENCE's patience) asks for it
  (``guard.should_stop``) after a validation, ``trainer.should_stop`` is set, like
  Lightning's ``EarlyStopping``; the Guard reduced the decision across ranks already, so
  every rank sets it at the same validation. The final point still runs.

A violation either raises :class:`~traingate.InvariantViolation` (``on_violation="raise"``,
the default; a step violation raises inside ``optimizer.step`` before the update) or stops
gracefully (``"stop"``): the step's gradients are dropped (set to ``None``, so the optimizer
leaves every weight as it was) and ``trainer.should_stop`` is set, so checkpoint callbacks
still run.

16-bit AMP (a ``MixedPrecision`` plugin with an enabled GradScaler, e.g.
``precision="16-mixed"`` on a GPU; on a CPU accelerator Lightning turns that flag into
``"bf16-mixed"``, so pass ``plugins=[MixedPrecision("16-mixed", "cpu")]``): a step whose
unscaled gradients are inf/NaN while its loss is finite is one the scaler skips
(``optimizer.step()`` is not applied, the scale backs off). It is recorded as a skip: the
Guard gets its loss and ``overflow_skipped=1`` but no gradient norm, so the finite check
sees the loss only and gradient-norm invariants skip the step. More than
``max_overflow_skips`` (default 3) such steps in a row is no longer a scale search: that
step reaches the Guard with its non-finite norm and INV-TRAIN-001 aborts. Without an
enabled scaler (fp32, bf16, ``GradScaler(enabled=False)``) a non-finite norm is a violation
at once.

The verdict is written on every exit path: ``on_fit_end``/``teardown``, ``on_exception``
(a ``KeyboardInterrupt`` is recorded as an interruption), and an exception leaving
``trainer.fit_loop.run``, which ``setup`` wraps so that the process running the loop closes
the Guard before re-raising: a crash, an abort (``InvariantViolation``) or an interruption.
That wrapper is what covers the workers of ``strategy="ddp_spawn"``, where Lightning runs
``on_exception`` and ``teardown`` only in the launching process. The Guard closes once,
on whichever path comes first.

Resume: the callback's ``state_dict`` carries ``guard.state_dict()`` (as JSON text) and the
validation count in the ``.ckpt``; ``fit(ckpt_path=...)`` into the same ``run_dir``
continues the tallies. Logging goes to ``trainer.loggers`` (rank 0): ``traingate/violations``,
``traingate/evaluations``, ``traingate/limit/<ID>``, ``traingate/observed/<ID>`` every
``log_every_n_steps`` steps, at each validation and on a violation; ``traingate/ok`` and
``traingate/status/<ID>`` (:data:`STATUS_CODES`) at the end.

Limits: covered are the whole-model gradient norm under DDP, FSDP1 and
``ModelParallelStrategy``, GradScaler skips under 16-bit AMP, and a verdict from a crashed
``ddp_spawn`` worker. Not covered: DeepSpeed ZeRO-2/3 keeps the partitioned gradients in
its engine (``p.grad`` is ``None`` where this hook runs), so no gradient norm is measured
there (a warning; gradient-norm invariants go unevaluated and ``contracts check`` says so);
ZeRO-0/1 gradients are whole on every rank and are measured. FSDP1's ``HYBRID_SHARD``
replicates shards across nodes and the sum over the world counts each replica (the norm is
``sqrt(replicas)`` too large). The FSDP1 path is tested on the norm function and the
callback's dispatch over 2 gloo ranks, not in a Lightning FSDP fit (Lightning refuses
``FSDPStrategy`` on a CPU accelerator). Only rank 0 writes the run dir: a crash on another
rank is recorded by rank 0 as the error its next collective raises once that rank's
process is gone (gloo: "Connection closed by peer"), not as that rank's exception; a worker
killed before its collective fails (SIGKILL, an OOM kill, a hung NCCL collective) writes no
verdict, and ``contracts check`` fails its run dir for that. An exception raised after the
fit loop inside a ``ddp_spawn`` worker (another callback's ``on_fit_end``) is not caught by
the wrapper.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from traingate.integrations import missing_extra

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ModuleNotFoundError as exc:  # the framework is an extra: say which
    raise missing_extra(exc, "lightning", "lightning") from exc

from traingate.integrations.grad_norm import grad_layout, sharded_grad_norm
from traingate.integrations.overflow import OverflowSkips, enabled_scaler
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.host import total_grad_norm
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
        max_overflow_skips: consecutive 16-bit AMP overflow steps (the GradScaler skips
            them) tolerated as skips before the next one reaches the Guard as a non-finite
            gradient norm and INV-TRAIN-001 aborts (default 3).
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
        max_overflow_skips: int = 3,
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
        self.skips = OverflowSkips(max_overflow_skips)
        self.guard_kwargs = dict(guard_kwargs)
        self.guard: Guard | None = None
        self.verdict: Verdict | None = None  # what the Guard wrote when it closed
        self.validations = 0  # real validation runs fed to the Guard so far
        self.stopped_by: InvariantViolation | None = None  # the violation "stop" acted on
        self._loss: Any = None  # summed (normalised) losses since the last optimizer step
        self._deferred = False  # the Guard waits for a checkpoint's state (see setup)
        self._max_steps = -1
        self._logged_violations = 0
        self._warned_engine = False

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
        if stage != "fit":
            return
        self._guard_fit_loop(trainer)
        if self.guard is not None and self.guard.closed is None:
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
        self.validations = self._logged_violations = self.skips.count = 0
        return self.guard

    def _guard_fit_loop(self, trainer: Trainer) -> None:
        """Close the Guard when an exception leaves ``trainer.fit_loop.run``, then re-raise.

        ``fit_loop.run`` runs in the process that trains, so this also covers the workers of
        ``strategy="ddp_spawn"`` (and other spawning launchers), where Lightning calls
        ``on_exception`` and ``teardown`` only in the launching process, which holds no
        Guard. Elsewhere it closes first and ``on_exception`` finds the Guard closed.
        """
        loop = trainer.fit_loop
        run = loop.run
        if getattr(run, "_traingate_callback", None) is self:
            return  # a later fit with the same trainer: wrapped already

        @functools.wraps(run)
        def run_and_close(*args: Any, **kwargs: Any) -> Any:
            try:
                return run(*args, **kwargs)
            except BaseException as exception:
                self._close_on(trainer, exception)
                raise

        run_and_close._traingate_callback = self  # type: ignore[attr-defined]
        loop.run = run_and_close  # type: ignore[method-assign]

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
        self._close_on(trainer, exception)

    def _close_on(self, trainer: Trainer, exception: BaseException) -> None:
        """Close with what ended the run: an abort (InvariantViolation), an interruption
        (KeyboardInterrupt) or a crash (anything else); once, whichever path comes first."""
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
        scaler = enabled_scaler(getattr(trainer.precision_plugin, "scaler", None))
        norm = None
        if self._needs_grad_norm or scaler is not None:
            norm = self._grad_norm(trainer, pl_module)  # Lightning has unscaled the grads
        violation = None
        try:
            guard.step(step, **self.skips.step_observations(loss, norm, scaler))
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

    @property
    def _needs_grad_norm(self) -> bool:
        guard = self.guard
        return guard is not None and any("grad_norm" in t.needs for t in guard.by_point["step"])

    def _grad_norm(self, trainer: Trainer, pl_module: LightningModule) -> Any:
        """The total gradient norm of the whole model, whatever the strategy shards
        (``None`` where the strategy's engine holds the gradients: nothing to measure)."""
        layout = grad_layout(trainer.strategy)
        if layout == "local":
            return total_grad_norm(pl_module.parameters())
        if layout == "engine":
            if not self._warned_engine:
                self._warned_engine = True
                warnings.warn(
                    "traingate: DeepSpeed ZeRO-2/3 keeps the gradients in its engine, so no "
                    "gradient norm is measured (gradient-norm invariants go unevaluated)",
                    stacklevel=3,
                )
            return None
        # the wrapped model: with FSDP1's use_orig_params=False only it holds the flat params
        model = getattr(trainer, "model", None) or pl_module
        device = getattr(trainer.strategy, "root_device", None)
        return sharded_grad_norm(model.parameters(), sharded=layout == "shards", device=device)

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
        if guard.should_stop:  # a `stop` invariant (patience): the same on every rank
            trainer.should_stop = True
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
