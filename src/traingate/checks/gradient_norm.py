"""INV-TRAIN-002 gradient health: the total gradient norm stays in [min_norm, max_norm].

Seed 004 called a run's gradients healthy when the total norm stayed above 0.001 (not
vanishing) and below 100 (not exploding); those are the defaults. One noisy step is not a
failure: the check fires once ``patience`` consecutive steps are out of range (default 5,
the same five steps after which ``loss_spike`` fires with its defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from traingate.checks.base import Check, CheckContext, CheckParams, Decision, Observation, register
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import Threshold, resolve


class GradientNormParams(CheckParams):
    """Norms below ``min_norm`` vanish, above ``max_norm`` explode; both ends pass.

    The check fires when the run of consecutive out-of-range steps reaches ``patience``
    (``patience: 1`` fires on the first such step).
    """

    min_norm: Threshold = Field(default=1e-3, validate_default=True)
    max_norm: Threshold = Field(default=100.0, validate_default=True)
    patience: int = Field(default=5, ge=1)


def check_gradient_norm(
    norm: float,
    streak: int,
    regime: Finetune | FromScratch,
    params: GradientNormParams,
    values: Mapping[str, float] | None = None,
) -> Decision:
    """Decide one step's gradient norm, given ``streak`` out-of-range steps just before it.

    ``metrics["streak"]`` is the streak including this step (0 when it is in range) and
    ``metrics["vanishing"|"exploding"]`` flag the side; a non-finite norm counts as
    exploding. The decision fails when that streak ≥ patience.
    """
    scope = values or {}
    lo = resolve(params.min_norm, regime, scope)
    hi = resolve(params.max_norm, regime, scope)
    if lo.value > hi.value:
        raise ValueError(f"min_norm {lo.value:.6g} is above max_norm {hi.value:.6g}")
    if not math.isfinite(norm) or norm > hi.value:
        side, bound, comparison = "exploding", hi, "<="
    elif norm < lo.value:
        side, bound, comparison = "vanishing", lo, ">="
    else:
        return Decision.against(
            True,
            norm,
            hi,
            "<=",
            f"gradient norm {norm:.4g} within [{lo.value:.4g}, {hi.value:.4g}]",
            metrics=_metrics(0, "", params.patience),
        )
    new_streak = streak + 1
    return Decision.against(
        new_streak < params.patience,
        norm,
        bound,
        comparison,
        f"{side} gradient norm {norm:.4g} outside [{lo.value:.4g}, {hi.value:.4g}] for "
        f"{new_streak} consecutive step(s) (fires at {params.patience})",
        "exploding: lower the lr, clip gradients, check for bad batches"
        if side == "exploding"
        else "vanishing: the loss is not reaching the weights (detached graph, frozen "
        "params, dead activations, or an lr schedule at zero)",
        _metrics(new_streak, side, params.patience),
    )


def _metrics(streak: int, side: str, patience: int) -> dict[str, float]:
    """``streak`` after this step, and which side (if any) this step was out on."""
    return {
        "streak": float(streak),
        "patience": float(patience),
        "vanishing": float(side == "vanishing"),
        "exploding": float(side == "exploding"),
    }


@register
class GradientNorm(Check[GradientNormParams]):
    """Keeps the out-of-range streak and applies :func:`check_gradient_norm` per step.

    The verdict is about the latest update; a step without ``grad_norm`` (e.g. an
    accumulation micro-step) is not evaluated (``None``) and leaves the streak alone.
    """

    kind = "gradient_norm"
    params_model = GradientNormParams
    points = frozenset({"step"})
    requires = frozenset({"grad_norm"})
    summary = "min_norm ≤ grad_norm ≤ max_norm, tolerated for patience-1 consecutive steps"

    def __init__(self, params: GradientNormParams, context: CheckContext) -> None:
        super().__init__(params, context)
        self.reset()

    def _decide(self) -> Decision | None:
        if self._last is None:
            return None
        norm, streak = self._last
        return check_gradient_norm(
            norm, streak, self.context.regime, self.params, self.context.values
        )

    def update(self, observation: Observation) -> None:
        norm = observation.get("grad_norm")
        self._last = None if norm is None else (float(norm), self._streak)
        self._decision = self._decide()
        if self._decision is not None:
            self._streak = int(self._decision.metrics["streak"])

    def verdict(self) -> Decision | None:
        return self._decision

    def reset(self) -> None:
        self._streak = 0
        self._last: tuple[float, int] | None = None
        self._decision: Decision | None = None

    def state_dict(self) -> dict[str, Any]:
        """The current streak and the latest step's inputs (norm, streak before it)."""
        return {"streak": self._streak, "last": None if self._last is None else list(self._last)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the verdict is recomputed from it."""
        last = state["last"]
        self._last = None if last is None else (float(last[0]), int(last[1]))
        self._decision = self._decide()
        self._streak = int(state["streak"])
