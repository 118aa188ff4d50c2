"""INV-TRAIN-002 gradient health: the total gradient norm stays in [min_norm, max_norm].

Seed 004 called a run's gradients healthy when the total norm stayed above 0.001 (not
vanishing) and below 100 (not exploding); those are the defaults. One noisy step is not a
failure: the check fires once ``patience`` consecutive steps are out of range (default 5,
the same five steps after which ``loss_spike`` fires with its defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

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


class GradientNormParams(CheckParams):
    """Norms below ``min_norm`` vanish, above ``max_norm`` explode; both ends pass.

    The check fires when the run of consecutive out-of-range steps reaches ``patience``
    (``patience: 1`` fires on the first such step).
    """

    min_norm: Threshold = Field(default=1e-3, validate_default=True)
    max_norm: Threshold = Field(default=100.0, validate_default=True)
    patience: int = Field(default=5, ge=1)


def check_gradient_norm(
    *, norm: float, streak: int, params: GradientNormParams, context: CheckContext
) -> Decision:
    """Decide one step's gradient norm, given ``streak`` out-of-range steps just before it.

    ``metrics["streak"]`` is the streak including this step (0 when it is in range) and
    ``metrics["vanishing"|"exploding"]`` flag the side; a non-finite norm counts as
    exploding. The decision fails when that streak ≥ patience.
    """
    lo, hi = norm_bounds(params, context)
    side = norm_side(norm, lo.value, hi.value)
    out = {"exploding": (hi, "<="), "vanishing": (lo, ">=")}.get(side)
    if out is None:
        return Decision.against(
            True,
            norm,
            hi,
            "<=",
            f"gradient norm {norm:.4g} within [{lo.value:.4g}, {hi.value:.4g}]",
            metrics=_metrics(0, "", params.patience),
        )
    bound, comparison = out
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


def norm_bounds(params: GradientNormParams, context: CheckContext) -> tuple[Resolved, Resolved]:
    """``min_norm`` and ``max_norm`` for this run; a ValueError when min is above max."""
    lo = context.resolve(params.min_norm)
    hi = context.resolve(params.max_norm)
    if lo.value > hi.value:
        raise ValueError(f"min_norm {lo.value:.6g} is above max_norm {hi.value:.6g}")
    return lo, hi


def norm_side(norm: float, lo: float, hi: float) -> str:
    """Which side of [lo, hi] ``norm`` is out on: "exploding" (non-finite counts),
    "vanishing", or "" when it is in range."""
    if not math.isfinite(norm) or norm > hi:
        return "exploding"
    if norm < lo:
        return "vanishing"
    return ""


def _metrics(streak: int, side: str, patience: int) -> dict[str, float]:
    """``streak`` after this step, and which side (if any) this step was out on."""
    return {
        "streak": float(streak),
        "patience": float(patience),
        "vanishing": float(side == "vanishing"),
        "exploding": float(side == "exploding"),
    }


class NormInputs(NamedTuple):
    """What the latest step's decision was made on (see :func:`check_gradient_norm`)."""

    norm: float
    streak: int


@dataclass
class GradientNormState:
    """The out-of-range streak so far and the latest step's inputs."""

    streak: int = 0
    last: NormInputs | None = None


@register
class GradientNorm(LatestCheck[GradientNormParams]):
    """Keeps the out-of-range streak and applies :func:`check_gradient_norm` per step.

    The verdict is about the latest update; a step without ``grad_norm`` (e.g. an
    accumulation micro-step) is not evaluated (``None``) and leaves the streak alone.
    """

    kind = "gradient_norm"
    params_model = GradientNormParams
    points = frozenset({"step"})
    requires = frozenset({"grad_norm"})
    summary = "min_norm ≤ grad_norm ≤ max_norm, tolerated for patience-1 consecutive steps"
    state = GradientNormState
    drawing = LimitDrawing("grad_norm", constant=True)
    decision = staticmethod(check_gradient_norm)
    carried = ("streak",)
    values: GradientNormState

    def update(self, observation: Observation) -> None:
        s = self.values
        norm = observation.get("grad_norm")
        s.last = None if norm is None else NormInputs(float(norm), s.streak)
        self.advance()

    @cached_property
    def _bounds(self) -> tuple[float, float]:
        """``min_norm`` and ``max_norm`` for the run (fixed for it: taken once)."""
        lo, hi = norm_bounds(self.params, self.context)
        return lo.value, hi.value

    def observe(self, observation: Observation) -> Quick | None:
        """In range (:func:`norm_side`): the streak ends, a pass against ``max_norm``."""
        norm = observation.get("grad_norm")
        if norm is None:
            self.update(observation)
            return None
        norm = float(norm)
        lo, hi = self._bounds
        if norm_side(norm, lo, hi):
            self.update(observation)
            return None
        s = self.values
        s.last = last = NormInputs(norm, s.streak)
        s.streak = 0
        return self.passed(norm, hi, "<=", last)
