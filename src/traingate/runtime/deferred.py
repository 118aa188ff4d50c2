"""Deferred steps: the Guard with no host sync between flushes (opt-in, for accelerators).

The eager ``guard.step(...)`` moves each step's scalars to the host (one sync a step) and
raises before ``optimizer.step()`` when the loss or gradient norm is not finite. On a GPU
that sync stalls the CPU until the step's backward has finished. :class:`DeferredSteps`
removes it::

    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    with Guard(...) as guard, DeferredSteps(guard, opt, sync_every=50) as steps:
        for step, batch in enumerate(loader):
            loss = model(batch).loss; loss.backward()
            steps.step(step, loss=loss, grad_norm=clip_grad_norm_(model.parameters(), 1.0))
            opt.step(); opt.zero_grad(); scheduler.step()
            if step % 500 == 0:
                steps.validation(epoch, val_loss=evaluate(model))

What it guarantees, exactly:

- **A non-finite step is never applied.** ``steps.step`` computes on the device whether the
  loss, the gradient norm and any scalar a step-level ``finite`` invariant names are all
  finite, and hands that flag to the next ``optimizer.step()`` as its ``found_inf`` tensor,
  the way ``GradScaler`` does: torch's fused Adam, AdamW, SGD and Adagrad skip the whole
  update (weights, moments, step count, weight decay) inside their kernel when it is set.
  Any other optimizer is refused when ``DeferredSteps`` is built, as is an
  ``optimizer.step()`` with no ``steps.step`` before it. This holds whatever the contracts
  say: with no ``finite`` invariant, or one that only warns, the step is skipped all the same.
  The flush records each skipped step in ``steps.skipped`` and as a ``step_skipped``
  evidence event (the one event an eager run does not have).
- **Every other step invariant is decided late, with the eager result.** The step's scalars
  stay in a device buffer; :meth:`DeferredSteps.flush` moves every buffered step to the host
  in ONE transfer and hands them, in order, to ``guard.step`` as host floats, so each
  invariant, tally, metrics row and evidence event is what the eager Guard records. A flush
  happens every ``sync_every`` steps, at :meth:`validation`, :meth:`final`,
  :meth:`state_dict` and on leaving the ``with`` block: places where the loop syncs anyway.
  An abort (a non-finite step, a gradient-norm spike, …) is raised at the flush, naming the
  step where it happened; the steps after it up to the flush were already applied (all but
  those skipped on the device) and are never handed to the Guard. An ``on_violation: stop``
  sets ``should_stop`` at the flush, up to ``sync_every`` steps late.
- **What it costs**: no host transfer and no sync between flushes (a few tiny device ops a
  step: a stack, a dot and a ``nan_to_num`` for the flag and, under torch.distributed, one
  MAX all-reduce of it, a device collective, not a host sync), and one transfer per flush.

The loop keeps calling its LR scheduler every step: a skipped step still consumes one
position of the schedule (as a step ``GradScaler`` skips does). ``sync_every=1`` is the
eager Guard: each step is judged before its ``optimizer.step()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traingate.errors import TraingateError
from traingate.runtime.host import is_tensor, total_grad_norm
from traingate.runtime.violation import InvariantViolation

if TYPE_CHECKING:
    from traingate.runtime.guard import Guard

__all__ = ["DeferredSteps", "UnseenStep", "UnsupportedOptimizer"]

# torch.optim classes whose fused step reads ``found_inf`` and skips the update when it is set
SKIPPING_OPTIMIZERS = ("Adam", "AdamW", "SGD", "Adagrad")


class UnsupportedOptimizer(TraingateError, TypeError):
    """The optimizer cannot skip a step on the device, so deferring its checks is refused."""


class UnseenStep(TraingateError, RuntimeError):
    """An optimizer step with no ``steps.step`` before it: a step never seen cannot be skipped."""


@dataclass
class _Row:
    """One buffered step: its device scalars, its finite flag and how to hand them back."""

    step: int
    hand_norm: bool  # False: a norm computed only for the flag, no invariant needs it
    values: Any = None  # 1-D float32 tensor on the device
    found_inf: Any = None  # 0-d float32 tensor: 1.0 when a checked value was not finite
    slots: list[tuple[str, str | None]] = field(default_factory=list)  # what each value fills
    arguments: dict[str, Any] = field(default_factory=dict)  # loss, grad_norm, components…
    metrics: dict[str, Any] = field(default_factory=dict)  # the extra scalars, in order

    def filled(self, values: list[float]) -> dict[str, Any]:
        """``guard.step``'s keyword arguments, this step's host values in place."""
        arguments = {k: dict(v) if isinstance(v, dict) else v for k, v in self.arguments.items()}
        metrics = dict(self.metrics)
        for (kind, key), value in zip(self.slots, values, strict=True):
            if kind == "metrics":
                metrics[key] = value
            elif key is None:
                arguments[kind] = value
            else:
                arguments[kind][key] = value
        if not self.hand_norm:
            arguments.pop("grad_norm", None)
        return {**arguments, **metrics}


def _refusal(optimizer: Any) -> str | None:
    """Why ``optimizer`` cannot skip a step on the device; ``None`` when it can."""
    cls = type(optimizer)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__.split(".")[:2] != ["torch", "optim"] or (
        cls.__name__ not in SKIPPING_OPTIMIZERS
    ):
        return (
            f"{name} cannot skip a step on the device: use torch.optim "
            f"{'/'.join(SKIPPING_OPTIMIZERS)} with fused=True, or the eager guard.step"
        )
    for i, group in enumerate(optimizer.param_groups):
        if not group.get("fused"):
            return (
                f"{cls.__name__} param group {i} is not fused: only the fused kernels skip a "
                f"step on the device; build it with fused=True, or use the eager guard.step"
            )
        if cls.__name__ == "SGD" and group["momentum"] and group["dampening"]:
            return (
                f"SGD param group {i} has momentum with dampening={group['dampening']}: a first "
                "step skipped by fused SGD leaves its momentum buffer uninitialised, which "
                "traingate can only pre-fill exactly with dampening=0"
            )
    return None


class DeferredSteps:
    """Checks finiteness on the device, skips a non-finite step there, and hands the steps
    to ``guard`` in batches of ``sync_every`` (see the module docstring for the guarantee).

    Args:
        guard: the :class:`~traingate.runtime.guard.Guard` that judges the steps.
        optimizer: a fused torch Adam/AdamW/SGD/Adagrad, or a sequence of them (each one's
            next step is skipped when the step's flag is set).
        sync_every: flush every N steps (1: judge each step before its optimizer step).
    """

    def __init__(self, guard: Guard, optimizer: Any, *, sync_every: int = 50) -> None:
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ValueError(f"sync_every must be a whole number ≥ 1, got {sync_every!r}")
        optimizers = list(optimizer) if isinstance(optimizer, Sequence) else [optimizer]
        if not optimizers:
            raise ValueError("DeferredSteps needs at least one optimizer")
        for opt in optimizers:
            reason = _refusal(opt)
            if reason is not None:
                raise UnsupportedOptimizer(reason)
        import torch

        self._torch = torch
        self.guard = guard
        self.sync_every = sync_every
        self.optimizers = optimizers
        step_level = guard.by_point["step"]
        self._wants_grad_norm = any("grad_norm" in t.needs for t in step_level)
        checked = {"loss", "grad_norm"}
        for t in step_level:
            if t.invariant.check == "finite":
                checked.update(t.check.params.observations)
        self.checked = frozenset(checked)  # the scalars whose finiteness is decided on device
        self.skipped: list[int] = []  # steps whose update was skipped on the device (flushed)
        self.unjudged: list[int] = []  # steps buffered after an abort, never judged
        self._rows: list[_Row] = []
        self._pending: dict[int, Any] = {}  # id(optimizer) → the flag its next step reads
        self._installed: dict[int, tuple[Any, Any]] = {}  # id(opt) → (ours, the one we hid)
        self._groups = {id(opt): 0 for opt in optimizers}
        self._hooks: list[Any] = []
        self._zeros: dict[tuple[Any, int], Any] = {}  # (device, length) → zeros, for _flag
        ranks = guard.ranks
        self._nccl = (
            torch.device("cuda", torch.cuda.current_device())
            if not ranks.single and ranks.dist.get_backend() == "nccl"
            else None
        )
        for opt in optimizers:
            self._prepare(opt)
            self._hooks.append(opt.register_step_pre_hook(self._before_step))
            self._hooks.append(opt.register_step_post_hook(self._after_step))

    # -- the optimizer side ----------------------------------------------------------------

    def _prepare(self, opt: Any) -> None:
        """Check groups added since the last look; pre-fill SGD momentum buffers with zeros
        (with dampening 0 that is exactly torch's first step, and a skipped first step then
        leaves them defined instead of uninitialised)."""
        groups = opt.param_groups
        seen = self._groups[id(opt)]
        if len(groups) == seen:
            return
        reason = _refusal(opt)
        if reason is not None:
            raise UnsupportedOptimizer(reason)
        if type(opt).__name__ == "SGD":
            for group in groups[seen:]:
                for p in group["params"] if group["momentum"] else ():
                    if opt.state[p].get("momentum_buffer") is None:
                        opt.state[p]["momentum_buffer"] = self._torch.zeros_like(p)
        self._groups[id(opt)] = len(groups)

    def _before_step(self, opt: Any, args: Any, kwargs: Any) -> None:
        """Hand this step's flag to ``opt`` as ``found_inf`` (combined with a GradScaler's)."""
        flag = self._pending.get(id(opt))
        if flag is None:
            raise UnseenStep(
                "optimizer.step() without steps.step(...) before it: the deferred Guard "
                "cannot skip a step it never saw; call steps.step after backward, before "
                "optimizer.step()"
            )
        self._prepare(opt)
        hidden = getattr(opt, "found_inf", None)
        left = self._installed.get(id(opt))
        if left is not None and hidden is left[0]:  # left behind by a step that raised
            hidden = left[1]
        if hidden is not None:  # a GradScaler's (a sum over devices): skip when either says
            # so, with exactly 1.0, the value the fused kernels test for
            flag = self._torch.maximum(hidden.ne(0).to(flag.dtype), flag.to(hidden.device))
        opt.found_inf = flag
        self._installed[id(opt)] = (flag, hidden)

    def _after_step(self, opt: Any, args: Any, kwargs: Any) -> None:
        """Put back what ``found_inf`` held before; this optimizer's flag is spent."""
        _, hidden = self._installed.pop(id(opt))
        if hidden is None:
            del opt.found_inf
        else:
            opt.found_inf = hidden
        del self._pending[id(opt)]

    # -- the loop side ---------------------------------------------------------------------

    def step(self, step: int, *, loss: Any, **observations: Any) -> None:
        """Observe one step after backward, before ``optimizer.step()``, without a sync.

        The same arguments as ``guard.step``: ``grad_norm`` or ``model``, ``components``,
        ``weights`` and extra scalar metrics (here ``model`` always yields a gradient norm,
        for the finite flag). Flushes when ``sync_every`` steps are buffered."""
        torch = self._torch
        metrics = observations  # what is left once the named observations are taken out
        grad_norm, model = metrics.pop("grad_norm", None), metrics.pop("model", None)
        components: Mapping[str, Any] | None = metrics.pop("components", None)
        weights: Mapping[str, Any] | None = metrics.pop("weights", None)
        hand_norm = grad_norm is not None or self._wants_grad_norm
        if grad_norm is None and model is not None:
            grad_norm = total_grad_norm(model.parameters())
        row = _Row(step, hand_norm=hand_norm and grad_norm is not None)
        tensors: list[Any] = []
        host_bad = False

        def place(kind: str, key: str | None, value: Any, checked: bool) -> Any:
            """Queue a tensor for the device row; return what the argument holds until then."""
            nonlocal host_bad
            if is_tensor(value):
                row.slots.append((kind, key))
                tensors.append(value.detach())
                return None
            if checked and not math.isfinite(float(value)):
                host_bad = True
            return value

        # the checked values first: the flag is decided over the row's head
        row.arguments["loss"] = place("loss", None, loss, True)
        if grad_norm is not None:
            row.arguments["grad_norm"] = place("grad_norm", None, grad_norm, True)
        placed = {k: place("metrics", k, v, True) for k, v in metrics.items() if k in self.checked}
        n_checked = len(tensors)
        placed.update(
            {k: place("metrics", k, v, False) for k, v in metrics.items() if k not in placed}
        )
        row.metrics = {k: placed[k] for k in metrics}  # the caller's order
        for kind, given in (("components", components), ("weights", weights)):
            if given:
                row.arguments[kind] = {k: place(kind, k, v, False) for k, v in given.items()}
        if tensors:
            row.values = self._stack(tensors)
            row.found_inf = self._flag(row.values[:n_checked])
        else:
            row.values = torch.zeros(0)
            row.found_inf = torch.zeros(())
        if host_bad:
            row.found_inf = torch.ones((), device=row.values.device)
        ranks = self.guard.ranks
        if not ranks.single:  # every rank skips the same steps, or the replicas drift apart
            if self._nccl is not None:  # NCCL reduces CUDA tensors only
                row.found_inf = row.found_inf.to(self._nccl)
            ranks.dist.all_reduce(row.found_inf, op=ranks.dist.ReduceOp.MAX)
        for opt in self.optimizers:  # a flag no optimizer has taken yet carries over (OR)
            held = self._pending.get(id(opt))
            self._pending[id(opt)] = (
                row.found_inf if held is None else torch.maximum(held, row.found_inf)
            )
        self._rows.append(row)
        if len(self._rows) >= self.sync_every:
            self.flush()

    def _stack(self, tensors: list[Any]) -> Any:
        """The tensors as one 1-D float32 row on the first one's device (device ops only;
        the promotion is exact, then one float32 cast, as ``to_host`` moves them)."""
        torch = self._torch
        try:
            row = torch.stack(tensors)
        except RuntimeError:  # shapes or devices differ
            device = tensors[0].device
            row = torch.stack([t.reshape(()).to(device) for t in tensors])
        if row.numel() != len(tensors):
            raise ValueError("every tensor handed to steps.step must hold one element")
        return row.reshape(-1).to(torch.float32)

    def _flag(self, checked: Any) -> Any:
        """1.0 when a value of ``checked`` is not finite, else 0.0, in two device ops: a
        finite x·0 is ±0 and inf·0 or NaN·0 is NaN, so the dot with zeros is 0 or NaN."""
        key = (checked.device, checked.numel())
        zeros = self._zeros.get(key)
        if zeros is None:
            zeros = self._zeros[key] = self._torch.zeros(key[1], device=key[0])
        return self._torch.dot(checked, zeros).nan_to_num(nan=1.0, posinf=1.0, neginf=1.0)

    def flush(self) -> list[dict[str, Any]]:
        """Move the buffered steps to the host in one transfer and have the Guard judge each,
        in order; returns what ``guard.step`` returned for each. An abort raises
        :class:`InvariantViolation` here, naming the step it happened at."""
        rows, self._rows = self._rows, []
        if not rows:
            return []
        # the first device holding values: a host-only row's empty tensor lives on the CPU
        device = next((r.values.device for r in rows if r.values.numel()), rows[0].values.device)
        pieces = []
        for row in rows:
            pieces += [row.values.to(device), row.found_inf.reshape(1).to(device)]
        host = self._torch.cat(pieces).tolist()  # the one device→host transfer of this flush
        judged: list[dict[str, Any]] = []
        at = 0
        for i, row in enumerate(rows):
            n = len(row.slots)
            arguments = row.filled(host[at : at + n])
            skipped = host[at + n] != 0.0
            at += n + 1
            if skipped:
                self.skipped.append(row.step)
                self.guard.record_event("step_skipped", step=row.step, on="device")
            try:
                judged.append(self.guard.step(row.step, **arguments))
            except InvariantViolation as error:
                self.unjudged = [r.step for r in rows[i + 1 :]]
                error.add_note(self._aftermath(row.step, skipped, rows[-1].step))
                raise
        return judged

    def _aftermath(self, step: int, skipped: bool, last: int) -> str:
        """What a violation at ``step``, raised at the flush after ``last``, left applied."""
        own = (
            f"step {step}'s update was skipped on the device (never applied)"
            if skipped
            else f"step {step}'s update was applied before this flush"
        )
        if last == step:
            return f"traingate deferred: {own}"
        return (
            f"traingate deferred: {own}; the steps after it up to {last} ran before this "
            "flush and were applied unless their own flag was set; the Guard never judged them"
        )

    # -- points where the loop syncs anyway ------------------------------------------------

    @property
    def pending(self) -> int:
        """How many steps are buffered, not yet judged."""
        return len(self._rows)

    @property
    def should_stop(self) -> bool:
        """The Guard's early stop, as of the last flush."""
        return self.guard.should_stop

    def validation(self, epoch: int, **observations: Any) -> None:
        """Flush, then ``guard.validation``."""
        self.flush()
        self.guard.validation(epoch, **observations)

    def final(self, **metrics: Any) -> None:
        """Flush, then ``guard.final``."""
        self.flush()
        self.guard.final(**metrics)

    def state_dict(self) -> dict[str, Any]:
        """Flush, then ``guard.state_dict`` (a checkpoint holds every step before it)."""
        self.flush()
        return self.guard.state_dict()

    def close(self) -> None:
        """Flush what is buffered and unhook the optimizers."""
        try:
            self.flush()
        finally:
            self._unhook()

    def _unhook(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> DeferredSteps:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, InvariantViolation):  # raised at a flush: nothing left to judge
            self._unhook()
            return
        self.close()
