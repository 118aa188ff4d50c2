"""INV-TRAIN-005 non-divergence: epoch-0 val loss under a regime cap, then at most ×ratio.

Seed 003: a hard-coded ``val_loss[0] <= 10.0`` calibrated for finetuning aborted every
legitimate from-scratch cold start (ln 50257 ≈ 10.82). The cap is therefore regime-keyed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from traingate.checks.base import Check, CheckParams, LimitDrawing, Observation, register
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.thresholds import Threshold


class NonDivergenceParams(CheckParams):
    """``epoch_zero_cap`` bounds epoch 0; ``ratio_limit`` bounds val[N] / val[N-1]."""

    epoch_zero_cap: Threshold
    ratio_limit: Threshold = Field(default=2.0, validate_default=True)


def check_non_divergence(
    *,
    history: Sequence[float],
    epoch: int,
    params: NonDivergenceParams,
    context: CheckContext,
) -> Decision:
    """Decide INV-TRAIN-005 for ``history[epoch]`` (val losses of epochs 0..epoch).

    Epoch 0 must be finite and ≤ the regime's cap; epoch N ≥ 1 must be finite and
    ≤ ratio_limit × epoch N−1 (exactly the limit passes).
    """
    if epoch < 0 or epoch >= len(history):
        raise ValueError(f"epoch {epoch} is outside a history of {len(history)} values")
    current = float(history[epoch])
    if epoch == 0:
        cap = context.resolve(params.epoch_zero_cap)
        if not math.isfinite(current):
            return Decision.against(
                False,
                current,
                cap,
                "finite",
                f"epoch-0 val loss is {current}",
                "the loss went non-finite before the first validation: check lr and init",
            )
        return Decision.compare(
            current,
            "<=",
            cap,
            detail=f"epoch-0 val loss {current:.4g} vs cap {cap.value:.4g} ({context.regime.kind})",
            hint="a cold start sits near ln(vocab); above the cap the run diverged or the regime "
            "is wrong (random weights run as finetune?)",
        )
    ratio = context.resolve(params.ratio_limit)
    previous = float(history[epoch - 1])
    limit = ratio.value * previous
    bound = type(ratio)(
        limit,
        f"({ratio.formula}) * val_loss[{epoch - 1}]",
        f"{ratio.value:.6g} * {previous:.6g} = {limit:.6g}",
    )
    if not math.isfinite(current):
        return Decision.against(
            False,
            current,
            bound,
            "finite",
            f"epoch-{epoch} val loss is {current}",
            "the loss went non-finite: lower the lr or check for bad batches",
        )
    return Decision.compare(
        current,
        "<=",
        bound,
        detail=f"epoch-{epoch} val loss {current:.4g} vs {ratio.value:.4g} × {previous:.4g}",
        hint="the val loss more than doubled since the previous epoch: the run is diverging",
    )


@dataclass
class NonDivergenceState:
    """The validation losses of epochs 0, 1, …, in order."""

    history: list[float] = field(default_factory=list)


@register
class NonDivergence(Check[NonDivergenceParams]):
    """Tracks per-epoch validation loss and applies :func:`check_non_divergence`."""

    kind = "non_divergence"
    params_model = NonDivergenceParams
    points = frozenset({"validation"})
    requires = frozenset({"epoch", "val_loss"})
    summary = "epoch-0 val loss ≤ regime cap; val[N] ≤ ratio × val[N-1]"
    state = NonDivergenceState
    drawing = LimitDrawing("val_loss")
    values: NonDivergenceState

    @classmethod
    def limit_label(cls, x: float) -> str:
        """Epoch 0 is bounded by the regime's cap, later epochs by ratio × the previous one."""
        return "epoch-0 cap" if x == 0 else "ratio limit (ratio × previous epoch)"

    def update(self, observation: Observation) -> None:
        history = self.values.history
        epoch = int(observation["epoch"])
        if epoch != len(history):
            raise ValueError(f"expected validation of epoch {len(history)}, got epoch {epoch}")
        history.append(float(observation["val_loss"]))
        self.refresh()

    def decide(self) -> Decision | None:
        history = self.values.history
        if not history:
            return None
        return check_non_divergence(
            history=history, epoch=len(history) - 1, params=self.params, context=self.context
        )
