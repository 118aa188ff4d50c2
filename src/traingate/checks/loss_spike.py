"""INV-TRAIN-003 no persistent loss spike, as llm-foundry's ``KillLossSpike``.

A step's loss is a spike when it is ≥ ``spike_factor`` × the mean of the ``window`` losses
before it (a non-finite loss is always a spike); the check fires when more than
``patience`` consecutive steps spike. Every finite loss, spikes included, then enters the
window, as in llm-foundry; non-finite ones stay out so one NaN cannot poison the mean.

Until the window is full the verdict is ``None`` (not evaluated), not "ok, warming up": a
run shorter than the window never had its spikes checked, and the Guard must not report
that as a pass. A contract for short runs sets a smaller ``window``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from pydantic import Field

from traingate.checks.base import (
    CheckParams,
    LatestCheck,
    LimitDrawing,
    Observation,
    register,
)
from traingate.checks.decision import CheckContext, Decision, Quick
from traingate.contract.thresholds import Resolved, Threshold


class LossSpikeParams(CheckParams):
    """llm-foundry's defaults: ×2 the mean of the last 100 losses, 4 consecutive tolerated."""

    spike_factor: Threshold = Field(default=2.0, validate_default=True)
    window: int = Field(default=100, ge=1)
    patience: int = Field(default=4, ge=0)


def check_loss_spike(
    *,
    loss: float,
    window_sum: float,
    window_count: int,
    consecutive: int,
    params: LossSpikeParams,
    context: CheckContext,
) -> Decision | None:
    """Decide one step's ``loss`` given the ``window_count`` losses before it (their sum is
    ``window_sum``) and the ``consecutive`` spikes just before it.

    ``None`` while fewer than ``params.window`` losses precede it. ``metrics["consecutive"]``
    counts spikes including this step; the decision fails when it exceeds ``patience``.
    """
    mean = window_mean(window_sum=window_sum, window_count=window_count, params=params)
    if mean is None:
        return None
    factor = context.resolve(params.spike_factor)
    limit = factor.value * mean
    bound = Resolved(
        limit,
        f"({factor.formula}) * mean(last {params.window} losses)",
        f"{factor.value:.6g} * {mean:.6g} = {limit:.6g}",
    )
    spike, run, ok = spike_run(loss, limit, consecutive, params)
    metrics = {
        "consecutive": float(run),
        "patience": float(params.patience),
        "window_mean": mean,
        "spike": float(spike),
    }
    if not spike:
        detail = f"loss {loss:.4g} below {factor.value:.4g} × window mean {mean:.4g}"
    else:
        detail = (
            f"loss {loss:.4g} ≥ {factor.value:.4g} × window mean {mean:.4g}: spike {run} in a "
            f"row (at most {params.patience} tolerated)"
        )
    return Decision.against(
        ok,
        loss,
        bound,
        "<",
        detail,
        "the loss jumped and stayed up: lower the lr or add warmup, check for a bad data "
        "shard, and resume from the last checkpoint before the spike",
        metrics,
    )


def window_mean(*, window_sum: float, window_count: int, params: LossSpikeParams) -> float | None:
    """The mean of the losses before the step; ``None`` while fewer than ``params.window``
    precede it."""
    if window_count < params.window:
        return None
    return window_sum / window_count


def spike_run(
    loss: float, limit: float, consecutive: int, params: LossSpikeParams
) -> tuple[bool, int, bool]:
    """Whether ``loss`` spikes against ``limit`` (a non-finite loss does), the run of
    spikes including it, and whether that run is tolerated (at most ``patience``)."""
    spike = not math.isfinite(loss) or loss >= limit
    run = consecutive + 1 if spike else 0
    return spike, run, run <= params.patience


class SpikeInputs(NamedTuple):
    """What the latest step's decision was made on (see :func:`check_loss_spike`)."""

    loss: float
    window_sum: float
    window_count: int
    consecutive: int


@dataclass
class LossSpikeState:
    """The window (oldest first), its running sum exactly as kept, pushes since the sum was
    last re-added, the spike run so far, and the latest step's inputs."""

    window: deque[float] = field(default_factory=deque)
    sum: float = 0.0
    pushes: int = 0
    consecutive: int = 0
    last: SpikeInputs | None = None


@register
class LossSpike(LatestCheck[LossSpikeParams]):
    """A ring buffer of recent losses with a running sum (O(1) per step).

    The verdict is about the latest update; a step without ``loss`` is not evaluated.
    """

    kind = "loss_spike"
    params_model = LossSpikeParams
    points = frozenset({"step"})
    requires = frozenset({"loss"})
    summary = "no more than patience consecutive losses ≥ spike_factor × mean(last window)"
    state = LossSpikeState
    drawing = LimitDrawing("loss", moving=True)
    decision = staticmethod(check_loss_spike)
    carried = ("consecutive",)
    values: LossSpikeState

    @classmethod
    def first_decision(cls, params: CheckParams) -> int:
        """``window`` + 1: a step is judged against the mean of the ``window`` finite losses
        before it (:func:`check_loss_spike` is ``None`` while fewer precede it), so the
        first decision is on the step after a full window."""
        return cls.own(params).window + 1

    def update(self, observation: Observation) -> None:
        s = self.values
        value = observation.get("loss")
        loss = None if value is None else float(value)
        s.last = None if loss is None else SpikeInputs(loss, s.sum, len(s.window), s.consecutive)
        self.advance()
        if loss is not None and math.isfinite(loss):
            self._push(loss)

    @cached_property
    def _factor(self) -> float:
        """``spike_factor`` for the run (fixed for it: taken once)."""
        return self.context.resolve(self.params.spike_factor).value

    def observe(self, observation: Observation) -> Quick | None:
        """A full window and a tolerated run (:func:`spike_run`): a pass against the limit."""
        value = observation.get("loss")
        s = self.values
        mean = None
        if value is not None:
            mean = window_mean(window_sum=s.sum, window_count=len(s.window), params=self.params)
        if mean is None:
            self.update(observation)
            return None
        loss = float(value)  # type: ignore[arg-type]
        limit = self._factor * mean
        run, ok = spike_run(loss, limit, s.consecutive, self.params)[1:]
        if not ok:
            self.update(observation)
            return None
        s.last = last = SpikeInputs(loss, s.sum, len(s.window), s.consecutive)
        s.consecutive = run
        if math.isfinite(loss):
            self._push(loss)
        return self.passed(loss, limit, "<", last)

    def _push(self, loss: float) -> None:
        s = self.values
        if len(s.window) == self.params.window:
            s.sum -= s.window.popleft()
        s.window.append(loss)
        s.sum += loss
        s.pushes += 1
        if s.pushes == self.params.window:
            # re-add once per window: add/subtract drift stays bounded, O(1) amortised
            s.sum = sum(s.window)
            s.pushes = 0

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; a window longer than ``params.window``
        was saved under other params and is an error."""
        saved = len(state.get("window") or ())
        if saved > self.params.window:
            raise ValueError(
                f"saved window holds {saved} losses but window is {self.params.window}"
            )
        super().load_state_dict(state)
