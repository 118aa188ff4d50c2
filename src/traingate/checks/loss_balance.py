"""INV-BAL loss balance: no single raw loss component may dominate the summed loss.

Seed 004: a multi-task model's countdown loss was 90.6 % of the raw total at epoch 1 and
91.2 % at epoch 100 while span F1 stayed 0. Uncertainty weighting had cut countdown's task
weight to 4.3 %, which hid the problem: the raw magnitude still dominated the gradients.
So the gate is on raw shares; weighted shares are reported alongside, never gated.

A component's share is |L_i| / Σ_j |L_j| (magnitudes, so a signed term cannot cancel the
total). The default ``max_share`` is 0.9, the "90 % of the total" the seed's authors wrote
down; exactly 0.9 passes, and seed 004's epoch-1 split (share ≈ 0.906) fires.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pydantic import Field

from traingate.checks.base import CheckParams, LatestCheck, LimitDrawing, Observation, register
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.thresholds import Threshold
from traingate.metrics.balance import component_shares


class LossBalanceParams(CheckParams):
    """Fires when the top raw share exceeds ``max_share`` in ``patience`` consecutive
    evaluations, ignoring the first ``warmup``; ``source`` is the observation to read.
    """

    max_share: Threshold = Field(default=0.9, validate_default=True)
    warmup: int = Field(default=0, ge=0)
    patience: int = Field(default=1, ge=1)
    source: Literal["components", "val_components"] = "components"


def check_loss_balance(
    *,
    components: Mapping[str, float],
    weights: Mapping[str, float] | None = None,
    evaluation: int,
    streak: int,
    params: LossBalanceParams,
    context: CheckContext,
) -> Decision | None:
    """Decide evaluation number ``evaluation`` (0-based), after ``streak`` dominated ones.

    ``None`` during warmup. ``metrics`` holds ``share/<name>``, ``weighted_share/<name>``
    (when ``weights`` are given) and ``streak`` including this evaluation. A non-finite
    component fails at once: its share is undefined.
    """
    if evaluation < params.warmup:
        return None
    if not components:
        raise ValueError("loss_balance needs at least one loss component")
    limit = context.resolve(params.max_share)
    raw = {k: float(v) for k, v in components.items()}
    shares = component_shares(raw)
    metrics = {f"share/{k}": s for k, s in shares.items()}
    if weights is not None:
        if set(weights) != set(raw):
            raise ValueError(f"weights name {sorted(weights)} but the components are {sorted(raw)}")
        weighted = component_shares({k: float(weights[k]) * v for k, v in raw.items()})
        metrics.update({f"weighted_share/{k}": s for k, s in weighted.items()})
    broken = [k for k, v in raw.items() if not math.isfinite(v)]
    if broken:
        metrics["streak"] = float(streak + 1)
        return Decision.against(
            False,
            raw[broken[0]],
            limit,
            "finite",
            f"loss component {', '.join(broken)} is not finite: shares are undefined",
            "a loss term went NaN/inf: check that component's targets and reduction",
            metrics,
        )
    top = max(shares, key=lambda k: shares[k])
    share = shares[top]
    dominated = share > limit.value
    run = streak + 1 if dominated else 0
    metrics["streak"] = float(run)
    weighted_note = (
        f" (weighted share {metrics[f'weighted_share/{top}']:.1%})" if weights is not None else ""
    )
    return Decision.against(
        run < params.patience,
        share,
        limit,
        "<=",
        f"{top} is {share:.1%} of the summed raw loss{weighted_note}; limit {limit.value:.1%}, "
        f"{run} dominated evaluation(s) in a row (fires at {params.patience})",
        f"{top} dominates the gradient signal whatever the task weights say: rescale or "
        "normalise its targets, change its loss (e.g. Huber delta), or drop the task",
        metrics,
    )


class BalanceInputs(NamedTuple):
    """What the latest evaluation's decision was made on (see :func:`check_loss_balance`)."""

    components: dict[str, float]
    weights: dict[str, float] | None
    evaluation: int
    streak: int


@dataclass
class LossBalanceState:
    """The evaluation count, the dominated streak, and the latest evaluation's inputs."""

    evaluations: int = 0
    streak: int = 0
    last: BalanceInputs | None = None


@register
class LossBalance(LatestCheck[LossBalanceParams]):
    """Counts evaluations and the dominated streak; applies :func:`check_loss_balance`.

    The verdict is about the latest update; an observation without ``params.source`` is
    not an evaluation (``None``) and leaves the counters alone. ``weights`` is optional.
    """

    kind = "loss_balance"
    params_model = LossBalanceParams
    points = frozenset({"step", "validation", "final"})
    summary = "no raw loss component above max_share of the summed raw loss"
    state = LossBalanceState
    drawing = LimitDrawing("component_shares", constant=True)
    decision = staticmethod(check_loss_balance)
    carried = ("streak",)
    values: LossBalanceState

    @classmethod
    def first_decision(cls, params: CheckParams) -> int:
        """``warmup`` + 1: the first ``warmup`` evaluations (observations carrying
        ``source``) are not judged (:func:`check_loss_balance` is ``None``), so the first
        decision is on the one after them."""
        return cls.own(params).warmup + 1

    def observes(self) -> frozenset[str]:
        """The components named by ``params.source``."""
        return frozenset({self.params.source})

    def update(self, observation: Observation) -> None:
        s = self.values
        components = observation.get(self.params.source)
        if components is None:
            s.last = None
            self.refresh()
            return
        weights = observation.get("weights")
        s.last = BalanceInputs(
            components={str(k): float(v) for k, v in components.items()},
            weights=None if weights is None else {str(k): float(v) for k, v in weights.items()},
            evaluation=s.evaluations,
            streak=s.streak,
        )
        self.advance()
        s.evaluations += 1
