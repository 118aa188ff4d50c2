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
from typing import Any, Literal

from pydantic import Field

from traingate.checks.base import Check, CheckContext, CheckParams, Decision, Observation, register
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import Threshold, resolve


class LossBalanceParams(CheckParams):
    """Fires when the top raw share exceeds ``max_share`` in ``patience`` consecutive
    evaluations, ignoring the first ``warmup``; ``source`` is the observation to read.
    """

    max_share: Threshold = Field(default=0.9, validate_default=True)
    warmup: int = Field(default=0, ge=0)
    patience: int = Field(default=1, ge=1)
    source: Literal["components", "val_components"] = "components"


def component_shares(components: Mapping[str, float]) -> dict[str, float]:
    """Each component's share of the summed magnitudes (all 0 when every component is 0)."""
    total = math.fsum(abs(v) for v in components.values())
    return {k: abs(v) / total if total > 0 else 0.0 for k, v in components.items()}


def check_loss_balance(
    components: Mapping[str, float],
    weights: Mapping[str, float] | None,
    evaluation: int,
    streak: int,
    regime: Finetune | FromScratch,
    params: LossBalanceParams,
    values: Mapping[str, float] | None = None,
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
    limit = resolve(params.max_share, regime, values or {})
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


@register
class LossBalance(Check[LossBalanceParams]):
    """Counts evaluations and the dominated streak; applies :func:`check_loss_balance`.

    The verdict is about the latest update; an observation without ``params.source`` is
    not an evaluation (``None``) and leaves the counters alone. ``weights`` is optional.
    """

    kind = "loss_balance"
    params_model = LossBalanceParams
    points = frozenset({"step", "validation", "final"})
    summary = "no raw loss component above max_share of the summed raw loss"

    def __init__(self, params: LossBalanceParams, context: CheckContext) -> None:
        super().__init__(params, context)
        self.reset()

    def _decide(self) -> Decision | None:
        if self._last is None:
            return None
        return check_loss_balance(
            self._last["components"],
            self._last["weights"],
            self._last["evaluation"],
            self._last["streak"],
            self.context.regime,
            self.params,
            self.context.values,
        )

    def update(self, observation: Observation) -> None:
        components = observation.get(self.params.source)
        if components is None:
            self._last = self._decision = None
            return
        weights = observation.get("weights")
        self._last = {
            "components": {str(k): float(v) for k, v in components.items()},
            "weights": None if weights is None else {str(k): float(v) for k, v in weights.items()},
            "evaluation": self._evaluations,
            "streak": self._streak,
        }
        self._decision = self._decide()
        self._evaluations += 1
        if self._decision is not None:
            self._streak = int(self._decision.metrics["streak"])

    def verdict(self) -> Decision | None:
        return self._decision

    def reset(self) -> None:
        self._evaluations = 0
        self._streak = 0
        self._last: dict[str, Any] | None = None
        self._decision: Decision | None = None

    def state_dict(self) -> dict[str, Any]:
        """Evaluation count, dominated streak, and the latest evaluation's inputs."""
        return {
            "evaluations": self._evaluations,
            "streak": self._streak,
            "last": None if self._last is None else dict(self._last),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the verdict is recomputed from it."""
        last = state["last"]
        self._last = (
            None
            if last is None
            else {
                "components": {str(k): float(v) for k, v in last["components"].items()},
                "weights": None
                if last["weights"] is None
                else {str(k): float(v) for k, v in last["weights"].items()},
                "evaluation": int(last["evaluation"]),
                "streak": int(last["streak"]),
            }
        )
        self._decision = self._decide()
        self._evaluations = int(state["evaluations"])
        self._streak = int(state["streak"])
