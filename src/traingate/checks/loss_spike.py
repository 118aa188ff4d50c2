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
from typing import Any

from pydantic import Field

from traingate.checks.base import Check, CheckContext, CheckParams, Decision, Observation, register
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import Resolved, Threshold, resolve


class LossSpikeParams(CheckParams):
    """llm-foundry's defaults: ×2 the mean of the last 100 losses, 4 consecutive tolerated."""

    spike_factor: Threshold = Field(default=2.0, validate_default=True)
    window: int = Field(default=100, ge=1)
    patience: int = Field(default=4, ge=0)


def check_loss_spike(
    loss: float,
    window_sum: float,
    window_count: int,
    consecutive: int,
    regime: Finetune | FromScratch,
    params: LossSpikeParams,
    values: Mapping[str, float] | None = None,
) -> Decision | None:
    """Decide one step's ``loss`` given the ``window_count`` losses before it (their sum is
    ``window_sum``) and the ``consecutive`` spikes just before it.

    ``None`` while fewer than ``params.window`` losses precede it. ``metrics["consecutive"]``
    counts spikes including this step; the decision fails when it exceeds ``patience``.
    """
    if window_count < params.window:
        return None
    factor = resolve(params.spike_factor, regime, values or {})
    mean = window_sum / window_count
    limit = factor.value * mean
    bound = Resolved(
        limit,
        f"({factor.formula}) * mean(last {params.window} losses)",
        f"{factor.value:.6g} * {mean:.6g} = {limit:.6g}",
    )
    spike = not math.isfinite(loss) or loss >= limit
    run = consecutive + 1 if spike else 0
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
        run <= params.patience,
        loss,
        bound,
        "<",
        detail,
        "the loss jumped and stayed up: lower the lr or add warmup, check for a bad data "
        "shard, and resume from the last checkpoint before the spike",
        metrics,
    )


@register
class LossSpike(Check[LossSpikeParams]):
    """A ring buffer of recent losses with a running sum (O(1) per step).

    The verdict is about the latest update; a step without ``loss`` is not evaluated.
    """

    kind = "loss_spike"
    params_model = LossSpikeParams
    points = frozenset({"step"})
    requires = frozenset({"loss"})
    summary = "no more than patience consecutive losses ≥ spike_factor × mean(last window)"

    def __init__(self, params: LossSpikeParams, context: CheckContext) -> None:
        super().__init__(params, context)
        self.reset()

    def _decide(self) -> Decision | None:
        if self._last is None:
            return None
        loss, window_sum, count, consecutive = self._last
        return check_loss_spike(
            loss,
            window_sum,
            count,
            consecutive,
            self.context.regime,
            self.params,
            self.context.values,
        )

    def update(self, observation: Observation) -> None:
        value = observation.get("loss")
        if value is None:
            self._last = self._decision = None
            return
        loss = float(value)
        self._last = (loss, self._sum, len(self._window), self._consecutive)
        self._decision = self._decide()
        if self._decision is not None:
            self._consecutive = int(self._decision.metrics["consecutive"])
        if math.isfinite(loss):
            self._push(loss)

    def _push(self, loss: float) -> None:
        if len(self._window) == self.params.window:
            self._sum -= self._window[0]
        self._window.append(loss)
        self._sum += loss
        self._pushes += 1
        if self._pushes == self.params.window:
            # re-add once per window: add/subtract drift stays bounded, O(1) amortised
            self._sum = sum(self._window)
            self._pushes = 0

    def verdict(self) -> Decision | None:
        return self._decision

    def reset(self) -> None:
        self._window: deque[float] = deque(maxlen=self.params.window)
        self._sum = 0.0
        self._pushes = 0
        self._consecutive = 0
        self._last: tuple[float, float, int, int] | None = None
        self._decision: Decision | None = None

    def state_dict(self) -> dict[str, Any]:
        """Window (oldest first), the running sum exactly as kept, counters, latest inputs."""
        return {
            "window": list(self._window),
            "sum": self._sum,
            "pushes": self._pushes,
            "consecutive": self._consecutive,
            "last": None if self._last is None else list(self._last),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the verdict is recomputed from it."""
        window = [float(x) for x in state["window"]]
        if len(window) > self.params.window:
            raise ValueError(
                f"saved window holds {len(window)} losses but window is {self.params.window}"
            )
        self._window = deque(window, maxlen=self.params.window)
        self._sum = float(state["sum"])
        self._pushes = int(state["pushes"])
        last = state["last"]
        self._last = (
            None if last is None else (float(last[0]), float(last[1]), int(last[2]), int(last[3]))
        )
        self._decision = self._decide()
        self._consecutive = int(state["consecutive"])
