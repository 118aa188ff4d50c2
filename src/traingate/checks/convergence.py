"""C-TRAIN-CONVERGENCE: the val loss sets a new best within ``patience`` validations, and the
final val loss reaches ``target_val_loss``.

Upstream (issue 11): a run whose val loss stops improving must stop early and cleanly (exit
0, status early_stop, never before ``min_epochs``), and its final val loss must reach the
target. At ``validation`` the kind keeps Lightning ``EarlyStopping``'s rule (mode ``min``):
an improvement beats the best by more than ``min_delta``; after ``patience`` validations
without one, :func:`check_convergence` fails, which an ``on_violation: stop`` invariant turns
into ``guard.should_stop``. Unlike Lightning, a non-finite val loss is not a stop reason of
its own: it is simply never an improvement (``non_divergence`` aborts on it). At ``final``,
:func:`check_convergence_target` compares the final val loss with ``target_val_loss``.

Which of the two decisions an invariant makes follows from its params: ``target_val_loss``
set means the final-point target (the contract must put it ``at: final``), unset means
patience (``at: validation``); loading a contract refuses any other pairing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Self

from pydantic import Field, ValidationInfo, model_validator

from traingate.checks.base import CheckParams, LatestCheck, Observation, register
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.thresholds import Threshold

PATIENCE_FIELDS = ("patience", "min_epochs", "min_delta")
TARGET_HINT = (
    "the run ended above its target val loss: train longer, tune the lr, or check that the "
    "target fits this model and data"
)


class ConvergenceParams(CheckParams):
    """``patience`` validations without an improvement of more than ``min_delta`` fail,
    from epoch ``min_epochs - 1`` on; ``target_val_loss`` makes it the final-point target."""

    patience: int = Field(default=3, ge=1)
    min_epochs: int = Field(default=0, ge=0)
    min_delta: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    target_val_loss: Threshold | None = None

    @model_validator(mode="after")
    def _fits_its_point(self, info: ValidationInfo) -> Self:
        """In a contract (``at`` in the validation context), the params match the point."""
        at = (info.context or {}).get("at")
        target = self.target_val_loss is not None
        if at == "validation" and target:
            raise ValueError(
                "target_val_loss is judged at the final point: put it on an invariant "
                "with `at: final` (at validation the kind judges patience)"
            )
        if at == "final":
            given = [name for name in PATIENCE_FIELDS if name in self.model_fields_set]
            if not target:
                raise ValueError("at the final point convergence needs target_val_loss")
            if given:
                raise ValueError(
                    f"{', '.join(given)} apply at validation; the final point judges "
                    "target_val_loss only"
                )
        return self


def check_convergence(
    *,
    val_loss: float,
    best: float,
    since_best: int,
    epoch: int,
    params: ConvergenceParams,
    context: CheckContext,
) -> Decision:
    """Decide epoch ``epoch``'s ``val_loss`` given the ``best`` so far (``inf``: none yet) and
    the ``since_best`` validations since it was set.

    An improvement is a finite val loss below ``best - min_delta`` (exactly ``min_delta``
    better is not one). ``metrics`` carry the state after this validation (``best``,
    ``since_best``) and ``improved``. The decision fails when ``since_best`` reaches
    ``patience`` and ``epoch + 1 >= min_epochs`` (the epoch-th validation is the
    ``epoch + 1``-th).
    """
    del context  # patience, min_epochs and min_delta are plain numbers
    improved = math.isfinite(val_loss) and val_loss < best - params.min_delta
    new_best = val_loss if improved else best
    new_since = 0 if improved else since_best + 1
    judged = epoch + 1 >= params.min_epochs
    exhausted = new_since >= params.patience
    metrics = {
        "best": new_best,
        "since_best": float(new_since),
        "improved": float(improved),
        "patience": float(params.patience),
    }
    return Decision(
        ok=not (exhausted and judged),
        observed=float(new_since),
        limit=float(params.patience),
        comparison="<",
        detail=_detail(val_loss, best, new_since, epoch, judged, params),
        hint="the val loss has plateaued: the run stops early (on_violation: stop); if real "
        "improvements are only slow, raise patience or lower min_delta",
        metrics=metrics,
    )


def _detail(
    val_loss: float,
    best: float,
    since_best: int,
    epoch: int,
    judged: bool,
    params: ConvergenceParams,
) -> str:
    """What :func:`check_convergence` saw, in one line."""
    if not since_best:
        before = "the first best" if math.isinf(best) else f"the best was {best:.4g}"
        return f"epoch {epoch}: val loss {val_loss:.4g} is a new best ({before})"
    text = (
        f"epoch {epoch}: val loss {val_loss:.4g}; no improvement of more than "
        f"{params.min_delta:g} on the best {best:.4g} for {since_best} validation(s) "
        f"(patience {params.patience})"
    )
    return text if judged else f"{text}; not judged before min_epochs {params.min_epochs}"


def check_convergence_target(
    *, val_loss: float, params: ConvergenceParams, context: CheckContext
) -> Decision:
    """Decide the final ``val_loss`` against ``target_val_loss`` (exactly the target passes;
    NaN never does)."""
    if params.target_val_loss is None:
        raise ValueError("convergence has no target_val_loss to judge the final val loss by")
    target = context.resolve(params.target_val_loss)
    detail = f"final val loss {val_loss:.4g} vs target {target.value:.4g}"
    return Decision.compare(val_loss, "<=", target, detail=detail, hint=TARGET_HINT)


class ConvergenceInputs(NamedTuple):
    """What the latest decision was made on (``epoch`` None at a final point without one)."""

    val_loss: float
    best: float
    since_best: int
    epoch: int | None


@dataclass
class ConvergenceState:
    """The best val loss so far (``inf``: none yet), the validations since it was set, and
    the latest decision's inputs."""

    best: float = math.inf
    since_best: int = 0
    last: ConvergenceInputs | None = None


@register
class Convergence(LatestCheck[ConvergenceParams]):
    """Tracks the best val loss and applies :func:`check_convergence` per validation, or
    :func:`check_convergence_target` to the final val loss when ``target_val_loss`` is set."""

    kind = "convergence"
    params_model = ConvergenceParams
    points = frozenset({"validation", "final"})
    requires = frozenset({"val_loss"})
    summary = "a new best val loss within patience validations; final val loss <= target"
    state = ConvergenceState
    values: ConvergenceState

    def observes(self) -> frozenset[str]:
        """The target needs the val loss; patience needs its epoch as well."""
        if self.params.target_val_loss is not None:
            return self.requires
        return self.requires | {"epoch"}

    def update(self, observation: Observation) -> None:
        s = self.values
        epoch = observation.get("epoch")
        s.last = ConvergenceInputs(
            float(observation["val_loss"]),
            s.best,
            s.since_best,
            None if epoch is None else int(epoch),
        )
        decision = self.refresh()
        if decision is not None and self.params.target_val_loss is None:
            s.best = float(decision.metrics["best"])
            s.since_best = int(decision.metrics["since_best"])

    def decide_on(self, last: ConvergenceInputs) -> Decision:
        if self.params.target_val_loss is not None:
            return check_convergence_target(
                val_loss=last.val_loss, params=self.params, context=self.context
            )
        if last.epoch is None:
            raise ValueError("convergence patience needs the validation's epoch")
        return check_convergence(**last._asdict(), params=self.params, context=self.context)
