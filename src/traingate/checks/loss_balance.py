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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, NamedTuple

from pydantic import Field

from traingate.checks.base import (
    CheckParams,
    LatestCheck,
    LimitDrawing,
    Observation,
    non_finite,
    register,
)
from traingate.checks.decision import CheckContext, Decision, Quick
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
    if in_warmup(evaluation, params):
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
    broken = non_finite(raw)
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
    top, share = top_share(shares)
    run, ok = dominance(share, limit.value, streak, params)
    metrics["streak"] = float(run)
    weighted_note = (
        f" (weighted share {metrics[f'weighted_share/{top}']:.1%})" if weights is not None else ""
    )
    return Decision.against(
        ok,
        share,
        limit,
        "<=",
        f"{top} is {share:.1%} of the summed raw loss{weighted_note}; limit {limit.value:.1%}, "
        f"{run} dominated evaluation(s) in a row (fires at {params.patience})",
        f"{top} dominates the gradient signal whatever the task weights say: rescale or "
        "normalise its targets, change its loss (e.g. Huber delta), or drop the task",
        metrics,
    )


def in_warmup(evaluation: int, params: LossBalanceParams) -> bool:
    """Whether evaluation number ``evaluation`` (0-based) is one of the unjudged first ones."""
    return evaluation < params.warmup


def top_share(shares: Mapping[str, float]) -> tuple[str, float]:
    """The component with the largest share (the first such), and its share."""
    top = max(shares, key=shares.__getitem__)
    return top, shares[top]


def dominance(
    share: float, limit: float, streak: int, params: LossBalanceParams
) -> tuple[int, bool]:
    """The dominated run including this evaluation (0 when ``share`` ≤ ``limit``), and
    whether it is tolerated (below ``patience``)."""
    run = streak + 1 if share > limit else 0
    return run, run < params.patience


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

    @cached_property
    def _limit(self) -> float:
        """``max_share`` for the run (fixed for it: taken once)."""
        return self.context.resolve(self.params.max_share).value

    def observe(self, observation: Observation) -> Quick | None:
        """Unweighted, finite and tolerated (:func:`dominance`): a pass against ``max_share``."""
        s = self.values
        components = observation.get(self.params.source)
        if (
            components is None
            or observation.get("weights") is not None
            or in_warmup(s.evaluations, self.params)
        ):
            self.update(observation)
            return None
        raw = {str(k): float(v) for k, v in components.items()}
        run, ok = 0, False
        if raw and not non_finite(raw):
            limit = self._limit
            share = top_share(component_shares(raw))[1]
            run, ok = dominance(share, limit, s.streak, self.params)
        if not ok:
            self.update(observation)
            return None
        s.last = last = BalanceInputs(raw, None, s.evaluations, s.streak)
        s.streak = run
        s.evaluations += 1
        return self.passed(share, limit, "<=", last)
