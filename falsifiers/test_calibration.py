"""Falsifiers for C-CALIBRATION (INV-CAL-001..004): seeds 000 and 004.

The boundaries are tested on the pure decisions with the shipped params; the knobs that
shape the measurement (the quantile, the confidence threshold, the number of bins, the
positive label, the first judged epoch) are tested through the registered checks, so a
changed number in the YAML or a flipped comparison in the code fails here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from traingate.checks import REGISTRY, CheckContext, Decision
from traingate.checks.calibration import (
    check_confident_errors,
    check_ece,
    check_probability_separation,
    check_wrong_confidence,
)
from traingate.checks.liveness import is_judged
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

WRONG_CONF, CONFIDENT, ECE, SEPARATION = (
    invariant(i) for i in ("INV-CAL-001", "INV-CAL-002", "INV-CAL-003", "INV-CAL-004")
)
MAX_P90, MAX_CONFIDENT_SHARE, CONFIDENT_AT, MAX_ECE, N_BINS = 0.95, 0.5, 0.9, 0.10, 15
MIN_SEPARATION, FIRST_EPOCH = 0.05, 10
REGIMES = st.sampled_from([Finetune(), FromScratch(32000)])
Regime = Finetune | FromScratch


def wrong_confidence(confidence: float | None, wrong: int, *, regime: Regime) -> Decision:
    """INV-CAL-001's decision on a quantile of ``wrong`` predictions' confidence."""
    return check_wrong_confidence(
        confidence=confidence, wrong=wrong, params=WRONG_CONF.params, context=CheckContext(regime)
    )


def confident_errors(share: float | None, wrong: int, *, regime: Regime) -> Decision:
    """INV-CAL-002's decision on the share of ``wrong`` predictions made confidently."""
    return check_confident_errors(
        share=share, wrong=wrong, params=CONFIDENT.params, context=CheckContext(regime)
    )


def calibration_error(ece: float, *, regime: Regime) -> Decision:
    """INV-CAL-003's decision on a binned ECE."""
    return check_ece(ece=ece, params=ECE.params, context=CheckContext(regime))


def separated(separation: float, *, regime: Regime) -> Decision:
    """INV-CAL-004's decision on a probability separation."""
    return check_probability_separation(
        separation=separation, params=SEPARATION.params, context=CheckContext(regime)
    )


unit = st.floats(min_value=0.0, max_value=1.0)


def decide(inv_id: str, observation: dict[str, object]):
    inv = invariant(inv_id)
    check = REGISTRY[inv.check](inv.params, CheckContext(Finetune()))
    check.update(observation)
    return check.verdict()


def all_wrong(confidences: list[float]) -> dict[str, object]:
    """Binary predictions, every one wrong, at the given confidences (float64, exact)."""
    conf = torch.tensor(confidences, dtype=torch.float64)
    n = conf.numel()
    return {
        "predictions": torch.zeros(n, dtype=torch.long),
        "labels": torch.ones(n, dtype=torch.long),
        "probabilities": torch.stack([conf, 1 - conf], dim=1),
        "epoch": 0,
    }


@given(unit, st.integers(1, 10_000), REGIMES)
def test_p90_wrong_confidence_is_at_most_0_95(p90: float, wrong: int, regime) -> None:
    assert wrong_confidence(p90, wrong, regime=regime).ok == (p90 <= MAX_P90)
    assert wrong_confidence(MAX_P90, wrong, regime=regime).ok
    assert not wrong_confidence(math.nextafter(MAX_P90, 1.0), wrong, regime=regime).ok
    assert wrong_confidence(0.949, wrong, regime=regime).ok  # seed 000, both arms
    assert wrong_confidence(None, 0, regime=regime).ok  # no errors: vacuous


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.5, 1.0), min_size=1, max_size=60))
def test_the_quantile_is_the_90th_percentile(confidences: list[float]) -> None:
    decision = decide("INV-CAL-001", all_wrong(confidences))
    assert math.isclose(decision.observed, float(np.quantile(confidences, 0.9)), abs_tol=1e-12)


@given(unit, st.integers(1, 10_000), REGIMES)
def test_confident_error_share_is_at_most_half(share: float, wrong: int, regime) -> None:
    assert confident_errors(share, wrong, regime=regime).ok == (share <= MAX_CONFIDENT_SHARE)
    assert confident_errors(MAX_CONFIDENT_SHARE, wrong, regime=regime).ok
    above = math.nextafter(MAX_CONFIDENT_SHARE, 1.0)
    assert not confident_errors(above, wrong, regime=regime).ok
    assert not confident_errors(0.81, wrong, regime=regime).ok  # seed 000's pathology


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.sampled_from([CONFIDENT_AT, math.nextafter(CONFIDENT_AT, 0.0), 0.6, 0.95, 1.0]),
        min_size=1,
        max_size=40,
    )
)
def test_confidence_threshold_is_0_9_inclusive(confidences: list[float]) -> None:
    decision = decide("INV-CAL-002", all_wrong(confidences))
    confident = sum(c >= CONFIDENT_AT for c in confidences)
    assert decision.observed == confident / len(confidences)
    assert decision.ok == (2 * confident <= len(confidences))


@given(unit, REGIMES)
def test_ece_is_at_most_a_tenth(ece: float, regime) -> None:
    assert calibration_error(ece, regime=regime).ok == (ece <= MAX_ECE)
    assert calibration_error(MAX_ECE, regime=regime).ok
    assert not calibration_error(math.nextafter(MAX_ECE, 1.0), regime=regime).ok
    assert not calibration_error(0.165, regime=regime).ok  # Guo et al.'s uncalibrated ResNet-110


def brute_ece(conf: list[float], correct: list[bool], n_bins: int) -> float:
    total = 0.0
    for b in range(n_bins):
        members = [
            i
            for i, c in enumerate(conf)
            if b / n_bins < c <= (b + 1) / n_bins or (b == 0 and c == 0.0)
        ]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            mean = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - mean)
    return total


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 1.0), st.booleans()), min_size=1, max_size=60))
def test_ece_uses_fifteen_equal_width_bins(rows: list[tuple[float, bool]]) -> None:
    conf = [c for c, _ in rows]
    correct = [r for _, r in rows]
    assume(all(abs(c * N_BINS - round(c * N_BINS)) > 1e-9 for c in conf))
    probabilities = torch.tensor([[c, 1 - c] for c in conf], dtype=torch.float64)
    observation = {
        "predictions": torch.zeros(len(rows), dtype=torch.long),
        "labels": torch.tensor([0 if r else 1 for r in correct]),
        "probabilities": probabilities,
        "epoch": 0,
    }
    decision = decide("INV-CAL-003", observation)
    assert math.isclose(decision.observed, brute_ece(conf, correct, N_BINS), abs_tol=1e-12)


@given(
    st.sampled_from(["INV-CAL-001", "INV-CAL-002", "INV-CAL-003"]),
    st.none() | st.integers(0, 10**7),
    st.none() | st.integers(0, 10**4),
)
def test_every_validation_is_judged(inv_id: str, step: int | None, epoch: int | None) -> None:
    assert is_judged(invariant(inv_id).params, step, epoch)


@given(st.floats(-1.0, 1.0), REGIMES)
def test_separation_is_at_least_0_05(separation: float, regime) -> None:
    assert separated(separation, regime=regime).ok == (separation >= MIN_SEPARATION)
    assert separated(MIN_SEPARATION, regime=regime).ok
    below = math.nextafter(MIN_SEPARATION, 0.0)
    assert not separated(below, regime=regime).ok


def span_head(in_span: float, out_span: float, epoch: int) -> dict[str, object]:
    """A sigmoid span head over two 105-bar windows with a 20-bar expansion each."""
    labels = torch.tensor(([0] * 50 + [1] * 20 + [0] * 35) * 2)
    p = torch.full(labels.shape, out_span, dtype=torch.float64)
    p[labels == 1] = in_span
    return {"labels": labels, "probabilities": p, "epoch": epoch}


def test_seed_004_separation_fails() -> None:
    for regime in (Finetune(), FromScratch(32000)):
        assert not check_probability_separation(
            separation=0.0036, params=SEPARATION.params, context=CheckContext(regime)
        ).ok
    decision = decide("INV-CAL-004", span_head(0.0646, 0.0610, epoch=99))  # epoch 100 of 100
    assert decision is not None and not decision.ok
    assert math.isclose(decision.observed, 0.0036, abs_tol=1e-9)


@given(st.floats(0.2, 1.0), st.floats(0.0, 0.1))
def test_separating_span_head_passes(in_span: float, out_span: float) -> None:
    decision = decide("INV-CAL-004", span_head(in_span, out_span, epoch=FIRST_EPOCH))
    assert decision is not None and decision.ok
    assert math.isclose(decision.observed, in_span - out_span, abs_tol=1e-9)


@given(st.none() | st.integers(0, 10**7), st.integers(0, 1000))
def test_separation_is_judged_from_epoch_10(step: int | None, epoch: int) -> None:
    assert is_judged(SEPARATION.params, step, epoch) == (epoch >= FIRST_EPOCH)
    assert not is_judged(SEPARATION.params, step, None)
    collapsed = decide("INV-CAL-004", span_head(0.0646, 0.0610, epoch=FIRST_EPOCH - 1))
    assert collapsed is None  # not judged yet, not a pass
