"""Calibration kinds (seeds 000 and 004): each passes when calibrated and fires when not."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.calibration import (
    ConfidentErrors,
    ConfidentErrorsParams,
    Ece,
    EceParams,
    ProbabilitySeparation,
    ProbabilitySeparationParams,
    WrongConfidence,
    WrongConfidenceParams,
    check_confident_errors,
    check_ece,
    check_probability_separation,
    check_wrong_confidence,
)
from traingate.checks.decision import CheckContext
from traingate.contract.regime import Finetune

from .conftest import verdict_after

CONTEXT = CheckContext(Finetune())
KINDS = (WrongConfidence, ConfidentErrors, Ece, ProbabilitySeparation)


def run(kind: type, params: object, *observations: dict[str, torch.Tensor]):
    return verdict_after(kind(params, CONTEXT), *observations)


def classifier(wrong_confidence: float, n: int = 200, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 4-class classifier, right on 80 % of rows at confidence 0.8 and wrong on 20 % at
    ``wrong_confidence``: calibrated on the right rows, over-confident when it errs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    wrong = torch.arange(n) % 5 == 0
    predictions = torch.where(wrong, (labels + 1) % 4, labels)
    confidence = torch.where(wrong, wrong_confidence, 0.8)
    probabilities = ((1 - confidence) / 3).unsqueeze(1).repeat(1, 4)
    probabilities[torch.arange(n), predictions] = confidence
    return {"predictions": predictions, "labels": labels, "probabilities": probabilities}


def seed_004_span_head(in_span: float, out_span: float) -> dict[str, torch.Tensor]:
    """Per-bar P(expansion) for 105-bar windows: 20 in-span bars (label 1), 85 out."""
    labels = torch.tensor(([1] * 20 + [0] * 85) * 2)
    p = torch.where(labels == 1, in_span, out_span)
    return {"labels": labels, "probabilities": torch.stack([1 - p, p], dim=1)}


def test_kinds_are_registered_for_validation() -> None:
    for kind in KINDS:
        assert REGISTRY[kind.kind] is kind
        assert kind.points == frozenset({"validation"})
        assert kind.requires <= set(kind.gather)


def test_wrong_confidence_passes_and_fires() -> None:
    params = WrongConfidenceParams(max_confidence=0.9)
    assert run(WrongConfidence, params, classifier(0.5)).ok
    fired = run(WrongConfidence, params, classifier(0.949))  # seed 000's p90
    assert not fired.ok and fired.observed == pytest.approx(0.949)
    assert fired.metrics["wrong"] == 40.0


def test_confident_errors_passes_and_fires() -> None:
    params = ConfidentErrorsParams(max_share=0.25)
    assert run(ConfidentErrors, params, classifier(0.6)).observed == 0.0
    fired = run(ConfidentErrors, params, classifier(0.95))
    assert not fired.ok and fired.observed == 1.0


def test_ece_passes_and_fires() -> None:
    params = EceParams(max_ece=0.05, n_bins=10)
    skewed = run(Ece, params, classifier(0.25))  # right rows under-confident at 0.8
    # bin (0.7, 0.8]: acc 1 conf 0.8 → 0.8·0.2; bin (0.2, 0.3]: acc 0 conf 0.25 → 0.2·0.25
    assert skewed.observed == pytest.approx(0.8 * 0.2 + 0.2 * 0.25)
    assert not skewed.ok
    honest = classifier(0.8)
    honest["predictions"] = honest["labels"].clone()  # right everywhere...
    honest["probabilities"] = torch.nn.functional.one_hot(honest["labels"], 4).double()  # ...at 1.0
    perfect = run(Ece, params, honest)
    assert perfect.ok and perfect.observed == 0.0


def test_seed_004_probability_separation_fires() -> None:
    params = ProbabilitySeparationParams(min_separation=0.05)
    collapsed = run(ProbabilitySeparation, params, seed_004_span_head(0.0646, 0.0610))
    assert collapsed.observed == pytest.approx(0.0036, abs=1e-6) and not collapsed.ok
    assert run(ProbabilitySeparation, params, seed_004_span_head(0.40, 0.10)).ok


def test_separation_accepts_a_sigmoid_head_and_named_labels() -> None:
    obs = seed_004_span_head(0.30, 0.20)
    sigmoid = {"labels": obs["labels"], "probabilities": obs["probabilities"][:, 1]}
    params = ProbabilitySeparationParams.model_validate(
        {"min_separation": 0.05, "positive_labels": ["in_span"], "label_names": {"in_span": 1}}
    )
    decision = run(ProbabilitySeparation, params, sigmoid)
    assert decision.ok and decision.observed == pytest.approx(0.10)
    with pytest.raises(ValidationError):
        ProbabilitySeparationParams.model_validate(
            {"min_separation": 0.05, "positive_labels": ["in_span"]}
        )


def test_separation_without_a_side_is_not_evaluated() -> None:
    params = ProbabilitySeparationParams(min_separation=0.05)
    only_negatives = {"labels": torch.zeros(5, dtype=torch.long), "probabilities": torch.rand(5)}
    assert run(ProbabilitySeparation, params, only_negatives) is None


def test_no_wrong_predictions_is_a_vacuous_pass() -> None:
    perfect = classifier(0.99)
    perfect["predictions"] = perfect["labels"].clone()
    for kind, params in (
        (WrongConfidence, WrongConfidenceParams(max_confidence=0.5)),
        (ConfidentErrors, ConfidentErrorsParams(max_share=0.0)),
    ):
        decision = run(kind, params, perfect)
        assert decision.ok and decision.observed == 0.0


def test_exact_boundaries() -> None:
    wrong = WrongConfidenceParams(max_confidence=0.9)
    assert check_wrong_confidence(confidence=0.9, wrong=3, params=wrong, context=CONTEXT).ok
    assert not check_wrong_confidence(
        confidence=math.nextafter(0.9, 1.0), wrong=3, params=wrong, context=CONTEXT
    ).ok
    share = ConfidentErrorsParams(max_share=0.25)
    assert check_confident_errors(share=0.25, wrong=4, params=share, context=CONTEXT).ok
    assert not check_confident_errors(
        share=math.nextafter(0.25, 1.0), wrong=4, params=share, context=CONTEXT
    ).ok
    ece = EceParams(max_ece=0.05)
    assert check_ece(ece=0.05, params=ece, context=CONTEXT).ok
    assert not check_ece(ece=math.nextafter(0.05, 1.0), params=ece, context=CONTEXT).ok
    assert not check_ece(ece=math.nan, params=ece, context=CONTEXT).ok
    sep = ProbabilitySeparationParams(min_separation=0.05)
    assert check_probability_separation(separation=0.05, params=sep, context=CONTEXT).ok
    assert not check_probability_separation(
        separation=math.nextafter(0.05, 0.0), params=sep, context=CONTEXT
    ).ok


def test_padding_is_dropped_and_batches_accumulate() -> None:
    params = WrongConfidenceParams(max_confidence=0.9)
    obs = classifier(0.95)
    pad = {
        "predictions": torch.zeros(50, dtype=torch.long),
        "labels": torch.full((50,), -100),
        "probabilities": torch.full((50, 4), 0.25),
    }
    halves = [{k: v[:100] for k, v in obs.items()}, pad, {k: v[100:] for k, v in obs.items()}]
    assert run(WrongConfidence, params, *halves).observed == pytest.approx(0.95)


def test_params_defaults_and_strictness() -> None:
    assert WrongConfidenceParams(max_confidence=0.9).quantile == 0.9
    assert ConfidentErrorsParams(max_share=0.3).confidence == 0.9
    assert EceParams(max_ece=0.1).n_bins == 15
    with pytest.raises(ValidationError):
        WrongConfidenceParams.model_validate({"max_confidence": 0.9, "quantile": 1.5})
    with pytest.raises(ValidationError):
        EceParams.model_validate({"max_ece": 0.1, "n_bins": 0})
