"""Calibration invariants: confidence on wrong predictions, ECE, probability separation.

Seed 000 reported "wrong-pred confidence p90 0.949" under a column label that said "fraction
of wrong predictions at ≥ 0.9": two different numbers, one name. Here each is its own kind
with its own limit: ``wrong_confidence`` (a quantile of the confidence of wrong predictions)
and ``confident_errors`` (the share of wrong predictions at confidence ≥ a threshold). Seed
004's span head collapsed to 0.065 on positives vs 0.061 on negatives (separation 0.0036)
against a stated need of > 0.05: that is ``probability_separation``.

Confidence is the probability given to the emitted prediction (see
:mod:`traingate.metrics.calibration`). Each kind decides on one validation's tensors
(:class:`~traingate.checks.liveness.TensorCheck`); torch is imported lazily.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from traingate.checks.base import register
from traingate.checks.confusion import label_ids, unknown_label_names
from traingate.checks.decision import CheckContext, Decision
from traingate.checks.liveness import VP, TensorCheck, ValidationParams
from traingate.contract.thresholds import Threshold

if TYPE_CHECKING:
    from torch import Tensor


class WrongPredictionsCheck(TensorCheck[VP]):
    """A kind about one validation's wrong predictions: :meth:`measure` them, then
    :meth:`judge` the measure with the count of wrong predictions."""

    gather = ("predictions", "labels", "probabilities")

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.calibration import error_count

        predictions, labels = data["predictions"], data["labels"]
        measured = self.measure(data["probabilities"], predictions, labels)
        return self.judge(measured, error_count(predictions, labels))

    @abstractmethod
    def measure(self, probabilities: Tensor, predictions: Tensor, labels: Tensor) -> float | None:
        """The kind's metric of the wrong predictions (``None`` when nothing is wrong)."""

    @abstractmethod
    def judge(self, measured: float | None, wrong: int) -> Decision:
        """The kind's pure decision on the metric and the count of wrong predictions."""


# -- wrong_confidence ---------------------------------------------------------------------


class WrongConfidenceParams(ValidationParams):
    """The ``quantile`` (default p90) of wrong predictions' confidence at most
    ``max_confidence``."""

    max_confidence: Threshold
    quantile: float = Field(default=0.9, ge=0.0, le=1.0)


def check_wrong_confidence(
    *,
    confidence: float | None,
    wrong: int,
    params: WrongConfidenceParams,
    context: CheckContext,
) -> Decision:
    """Passes when the quantile ``confidence`` of the ``wrong`` predictions ≤ max_confidence
    (equality passes). With no wrong prediction (``wrong`` 0, ``confidence`` None) nothing is
    over-confident: it passes, observed 0."""
    limit = context.resolve(params.max_confidence)
    q = f"p{params.quantile * 100:g}"
    if wrong == 0 or confidence is None:
        return Decision.against(
            True, 0.0, limit, "<=", f"no wrong predictions: {q} confidence is vacuous", ""
        )
    return Decision.compare(
        confidence,
        "<=",
        limit,
        detail=f"{q} confidence of {wrong} wrong prediction(s) is {confidence:.4f}; "
        f"limit {limit.value:.4g}",
        hint="the model is confidently wrong (seed 000: p90 0.949); use label smoothing or "
        "temperature scaling, and check for label noise",
        metrics={"wrong": float(wrong)},
    )


@register
class WrongConfidence(WrongPredictionsCheck[WrongConfidenceParams]):
    """Takes a quantile of wrong predictions' confidence; applies
    :func:`check_wrong_confidence`."""

    kind = "wrong_confidence"
    params_model = WrongConfidenceParams
    summary = "quantile (p90) of wrong predictions' confidence ≤ max_confidence"

    def measure(self, probabilities: Tensor, predictions: Tensor, labels: Tensor) -> float | None:
        from traingate.metrics.calibration import wrong_confidence_quantile

        return wrong_confidence_quantile(probabilities, predictions, labels, self.params.quantile)

    def judge(self, measured: float | None, wrong: int) -> Decision:
        return check_wrong_confidence(
            confidence=measured, wrong=wrong, params=self.params, context=self.context
        )


# -- confident_errors ---------------------------------------------------------------------


class ConfidentErrorsParams(ValidationParams):
    """The share of wrong predictions with confidence ≥ ``confidence`` at most ``max_share``."""

    max_share: Threshold
    confidence: float = Field(default=0.9, ge=0.0, le=1.0)


def check_confident_errors(
    *, share: float | None, wrong: int, params: ConfidentErrorsParams, context: CheckContext
) -> Decision:
    """Passes when ``share`` (of the ``wrong`` predictions, those at confidence ≥
    ``params.confidence``) ≤ max_share (equality passes); no wrong prediction passes with 0."""
    limit = context.resolve(params.max_share)
    if wrong == 0 or share is None:
        return Decision.against(True, 0.0, limit, "<=", "no wrong predictions", "")
    return Decision.compare(
        share,
        "<=",
        limit,
        detail=f"{share:.1%} of {wrong} wrong prediction(s) have confidence ≥ "
        f"{params.confidence:g}; limit {limit.value:.1%}",
        hint="errors are made with high confidence (seed 000's original pathology: ~81 % of wrong "
        "predictions at ≥ 0.9); calibrate (label smoothing, temperature) before trusting scores",
        metrics={"wrong": float(wrong)},
    )


@register
class ConfidentErrors(WrongPredictionsCheck[ConfidentErrorsParams]):
    """Counts confident wrong predictions; applies :func:`check_confident_errors`."""

    kind = "confident_errors"
    params_model = ConfidentErrorsParams
    summary = "share of wrong predictions at confidence ≥ threshold ≤ max_share"

    def measure(self, probabilities: Tensor, predictions: Tensor, labels: Tensor) -> float | None:
        from traingate.metrics.calibration import confident_error_share

        return confident_error_share(probabilities, predictions, labels, self.params.confidence)

    def judge(self, measured: float | None, wrong: int) -> Decision:
        return check_confident_errors(
            share=measured, wrong=wrong, params=self.params, context=self.context
        )


# -- ece ----------------------------------------------------------------------------------


class EceParams(ValidationParams):
    """Binned expected calibration error (``n_bins`` equal-width bins) at most ``max_ece``."""

    max_ece: Threshold
    n_bins: int = Field(default=15, ge=1, le=1000)


def check_ece(*, ece: float, params: EceParams, context: CheckContext) -> Decision:
    """Passes when ``ece`` ≤ max_ece (equality passes; NaN fails)."""
    limit = context.resolve(params.max_ece)
    return Decision.compare(
        ece,
        "<=",
        limit,
        detail=f"ECE ({params.n_bins} bins) {ece:.4f}; limit {limit.value:.4g}",
        hint="confidence and accuracy disagree: the scores are not probabilities; calibrate "
        "(temperature scaling) or check label smoothing",
    )


@register
class Ece(TensorCheck[EceParams]):
    """Computes binned ECE of one validation; applies :func:`check_ece`."""

    kind = "ece"
    params_model = EceParams
    gather = ("predictions", "labels", "probabilities")
    summary = "binned expected calibration error ≤ max_ece"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.calibration import expected_calibration_error

        ece = expected_calibration_error(
            data["probabilities"], data["predictions"], data["labels"], self.params.n_bins
        )
        return check_ece(ece=ece, params=self.params, context=self.context)


# -- probability_separation ---------------------------------------------------------------


class ProbabilitySeparationParams(ValidationParams):
    """mean P(positive) on gold-positive positions − on the others at least
    ``min_separation``; ``positive_labels`` (ids or names via ``label_names``) define both."""

    min_separation: Threshold
    positive_labels: list[int | str] = Field(default_factory=lambda: [1], min_length=1)
    label_names: dict[str, int] | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> ProbabilitySeparationParams:
        missing = unknown_label_names(self.positive_labels, self.label_names)
        if missing:
            raise ValueError(f"label(s) {missing} are not defined in label_names")
        return self


def check_probability_separation(
    *, separation: float, params: ProbabilitySeparationParams, context: CheckContext
) -> Decision:
    """Passes when ``separation`` ≥ min_separation (equality passes; NaN fails)."""
    limit = context.resolve(params.min_separation)
    return Decision.compare(
        separation,
        ">=",
        limit,
        detail=f"probability separation {separation:.4f} (positives minus negatives); "
        f"minimum {limit.value:.4g}",
        hint="the positive-class probability is the same on positives and negatives: it carries no "
        "signal (seed 004: 0.065 vs 0.061); look for a loss term or class imbalance drowning it",
    )


@register
class ProbabilitySeparation(TensorCheck[ProbabilitySeparationParams]):
    """Measures P(positive) on positives vs negatives; applies
    :func:`check_probability_separation`.

    ``probabilities`` may be (N, C) (P(positive) is the sum over ``positive_labels``' columns)
    or (N,) (already P(positive), e.g. a sigmoid head). A validation without a positive or
    without a negative position has nothing to separate: ``None`` (not evaluated).
    """

    kind = "probability_separation"
    params_model = ProbabilitySeparationParams
    gather = ("labels", "probabilities")
    summary = "mean P(positive) on positives − on negatives ≥ min_separation"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.calibration import (
            positive_class_probability,
            probability_separation,
        )

        ids = label_ids(self.params.positive_labels, self.params.label_names)
        p_positive, positive = positive_class_probability(
            data["probabilities"], data["labels"], ids
        )
        separation = probability_separation(p_positive, positive)
        if separation is None:
            return None
        return check_probability_separation(
            separation=separation, params=self.params, context=self.context
        )
