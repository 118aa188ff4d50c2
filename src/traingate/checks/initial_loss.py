"""INV-TRAIN-004 initial loss: the first step's loss sits near chance, ln C.

TheDeepChecker's sanity check: a freshly initialised C-way classifier predicts close to
uniformly, so its cross-entropy (mean, in nats) is ≈ ln C whatever the label distribution.
The check requires |L0 − ln C| ≤ r·ln C, i.e. (1 − r)·ln C ≤ L0 ≤ (1 + r)·ln C.

Default r = 0.5: a sane init lands within a few percent of ln C, and 0.5 still admits the
small-C case (C = 2 allows 0.35 … 1.04) and moderately non-uniform logits, while catching
logits an order of magnitude too large (L0 ≫ ln C) and any start that already beats chance
by half (L0 ≪ ln C). r ≥ 1 switches the lower side off, which is what a finetune wants:
contracts write ``tolerance: {finetune: 1.0, from_scratch: 0.5}``.

Only the first loss the check sees counts; a resumed run must restore it via
``load_state_dict`` or it would judge a trained loss as the initial one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import Field

from traingate.checks.base import Check, CheckParams, LimitDrawing, Observation, register
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.thresholds import Resolved, Threshold


class InitialLossParams(CheckParams):
    """``num_classes`` is C (``vocab_size`` for an LM); ``tolerance`` is r, relative to ln C."""

    num_classes: Threshold
    tolerance: Threshold = Field(default=0.5, validate_default=True)


def _group(text: str) -> str:
    """Parenthesise a formula text unless it is a single number or symbol."""
    return text if re.fullmatch(r"[\w.]+", text) else f"({text})"


def check_initial_loss(
    *, loss: float, params: InitialLossParams, context: CheckContext
) -> Decision:
    """Decide the first step's ``loss`` against (1 ± tolerance)·ln(num_classes); both ends pass.

    A failure says which side: far above chance (bad init, summed loss) or far below it
    (label leakage, a trivial task, or pretrained weights run as from-scratch).
    """
    loss = float(loss)
    classes = context.resolve(params.num_classes)
    tol = context.resolve(params.tolerance)
    if classes.value < 2:
        raise ValueError(f"num_classes must be at least 2, got {classes.value:.6g}")
    if tol.value < 0:
        raise ValueError(f"tolerance must be non-negative, got {tol.value:.6g}")
    ln_c = math.log(classes.value)
    upper = (1.0 + tol.value) * ln_c
    lower = (1.0 - tol.value) * ln_c
    ln_text = f"ln({classes.formula})"
    ln_eval = f"ln({classes.value:.6g})"
    upper_bound = Resolved(
        upper,
        f"(1 + {_group(tol.formula)}) * {ln_text}",
        f"(1 + {tol.value:.6g}) * {ln_eval} = {upper:.6g}",
    )
    lower_bound = Resolved(
        lower,
        f"(1 - {_group(tol.formula)}) * {ln_text}",
        f"(1 - {tol.value:.6g}) * {ln_eval} = {lower:.6g}",
    )
    metrics = {"ln_num_classes": ln_c, "relative_deviation": (loss - ln_c) / ln_c}
    where = f"initial loss {loss:.4g} vs ln C = {ln_c:.4g} (C = {classes.value:.6g})"
    if not math.isfinite(loss):
        return Decision.against(
            False,
            loss,
            upper_bound,
            "finite",
            f"{where}: not finite",
            "the loss is NaN/inf before training: check the inputs, labels out of range, "
            "and a log of zero in the loss",
            metrics,
        )
    if loss > upper:
        return Decision.against(
            False,
            loss,
            upper_bound,
            "<=",
            f"{where}: far above chance",
            "the untrained model is confidently wrong: check the init scale of the output "
            "layer, that the loss is a mean (not a sum) in nats, and that it was logged before "
            "any update (after updates, the lr is too high)",
            metrics,
        )
    if loss < lower:
        return Decision.against(
            False,
            loss,
            lower_bound,
            ">=",
            f"{where}: far below chance",
            "an untrained model already beats chance: labels leak into the inputs, the task "
            "is trivially solvable, or pretrained weights were run as from_scratch",
            metrics,
        )
    above = loss >= ln_c
    return Decision.against(
        True,
        loss,
        upper_bound if above else lower_bound,
        "<=" if above else ">=",
        f"{where}: within tolerance {tol.value:.4g}",
        metrics=metrics,
    )


@dataclass
class InitialLossState:
    """The first loss seen (``None`` before it) and whether the latest update was it."""

    initial_loss: float | None = None
    fresh: bool = False


@register
class InitialLoss(Check[InitialLossParams]):
    """Keeps the first loss it sees and applies :func:`check_initial_loss` to it.

    The verdict is about the latest update, so it is a decision only right after the
    first step and ``None`` afterwards: the invariant is evaluated exactly once.
    """

    kind = "initial_loss"
    params_model = InitialLossParams
    points = frozenset({"step"})
    requires = frozenset({"loss"})
    summary = "|L0 - ln C| <= tolerance * ln C on the first step"
    state = InitialLossState
    drawing = LimitDrawing("loss", constant=True, once=True, mirror="ln_num_classes")
    values: InitialLossState

    def decide(self) -> Decision | None:
        s = self.values
        if s.initial_loss is None or not s.fresh:
            return None
        return check_initial_loss(loss=s.initial_loss, params=self.params, context=self.context)

    def update(self, observation: Observation) -> None:
        s = self.values
        value = observation.get("loss")
        s.fresh = s.initial_loss is None and value is not None
        if s.fresh:
            s.initial_loss = float(value)
        self.refresh()
