"""Calibration metrics against hand-computed and brute-force references (seeds 000, 004)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from traingate.metrics.calibration import (
    confident_error_share,
    expected_calibration_error,
    prediction_confidence,
    probability_separation,
    quantile,
    wrong_confidence_quantile,
)

# rows of 3-class probabilities, a prediction and a gold label
rows = st.lists(
    st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).filter(lambda r: sum(r) > 0),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=40,
)


def tensors(data: list[tuple[list[float], int, int]]) -> tuple[torch.Tensor, ...]:
    probs = torch.tensor([[v / sum(r) for v in r] for r, _, _ in data], dtype=torch.float64)
    preds = torch.tensor([p for _, p, _ in data])
    gold = torch.tensor([g for _, _, g in data])
    return probs, preds, gold


def test_confidence_is_the_probability_of_the_emitted_prediction() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    conf = prediction_confidence(probs, torch.tensor([1, 2]))  # not the argmax in row 0
    assert conf.tolist() == pytest.approx([0.2, 0.6])
    with pytest.raises(ValueError):
        prediction_confidence(probs, torch.tensor([0, 1, 2]))


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_quantile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert quantile(torch.tensor(values, dtype=torch.float64), q) == pytest.approx(
        float(np.quantile(np.array(values), q)), rel=1e-9, abs=1e-9
    )


def test_quantile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        quantile(torch.tensor([1.0]), 1.5)
    with pytest.raises(ValueError):
        quantile(torch.tensor([]), 0.5)


def test_wrong_confidence_by_hand() -> None:
    # confidences of the wrong rows: 0.9, 0.6, 0.8 → p90 interpolates between 0.8 and 0.9
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.95, 0.05]], dtype=torch.float64)
    preds = torch.tensor([0, 1, 1, 0])
    gold = torch.tensor([1, 0, 0, 0])  # rows 0..2 wrong, row 3 right (conf 0.95, ignored)
    assert wrong_confidence_quantile(probs, preds, gold, 0.9) == pytest.approx(
        float(np.quantile([0.9, 0.6, 0.8], 0.9))
    )
    assert wrong_confidence_quantile(probs, preds, gold, 0.0) == pytest.approx(0.6)
    assert wrong_confidence_quantile(probs, gold, gold) is None


def test_confident_error_share_counts_the_threshold_itself() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.05, 0.95], [0.5, 0.5]], dtype=torch.float64)
    preds = torch.tensor([0, 1, 1, 0])
    gold = torch.tensor([1, 0, 0, 0])  # wrong: conf 0.9 (at threshold), 0.7, 0.95
    assert confident_error_share(probs, preds, gold, 0.9) == pytest.approx(2 / 3)
    assert confident_error_share(probs, preds, gold, 0.91) == pytest.approx(1 / 3)
    assert confident_error_share(probs, gold, gold) is None


def brute_ece(conf: list[float], correct: list[bool], n_bins: int) -> float:
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i, c in enumerate(conf) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            mean = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - mean)
    return total


@given(rows, st.integers(1, 20))
@settings(max_examples=60, deadline=None)
def test_ece_matches_brute_force(data: list[tuple[list[float], int, int]], n_bins: int) -> None:
    probs, preds, gold = tensors(data)
    conf = prediction_confidence(probs, preds).tolist()
    correct = (preds == gold).tolist()
    # a confidence within rounding of a bin edge may fall either side in either computation
    assume(all(abs(c * n_bins - round(c * n_bins)) > 1e-9 or c == 0 for c in conf))
    assert expected_calibration_error(probs, preds, gold, n_bins) == pytest.approx(
        brute_ece(conf, correct, n_bins), abs=1e-12
    )


def test_ece_by_hand_and_edges() -> None:
    # two bins; 0.5 lies in the first ((0, 0.5]), 0.75 and 1.0 in the second
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.0, 1.0]], dtype=torch.float64)
    preds = torch.tensor([0, 1, 1])
    gold = torch.tensor([1, 1, 1])
    # bin 1: acc 0 conf 0.5 → 1/3·0.5; bin 2: acc 1 conf 0.875 → 2/3·0.125
    assert expected_calibration_error(probs, preds, gold, 2) == pytest.approx(
        0.5 / 3 + 2 / 3 * 0.125
    )
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, torch.tensor([0, 1]), torch.tensor([0, 1])) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error(perfect, torch.tensor([0, 1]), torch.tensor([0, 1]), 0)


def test_seed_004_probability_separation() -> None:
    # epoch 100: in-span mean 0.065, out-span mean 0.061 (the seed's 0.0036 is unrounded)
    p = torch.tensor([0.065] * 20 + [0.061] * 80)
    positive = torch.tensor([True] * 20 + [False] * 80)
    assert probability_separation(p, positive) == pytest.approx(0.004, abs=1e-7)
    assert probability_separation(p, torch.zeros(100, dtype=torch.bool)) is None
    assert probability_separation(p, torch.ones(100, dtype=torch.bool)) is None


@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=2, max_size=40))
@settings(max_examples=60, deadline=None)
def test_probability_separation_is_a_difference_of_means(pairs: list[tuple[float, bool]]) -> None:
    pos = [p for p, b in pairs if b]
    neg = [p for p, b in pairs if not b]
    got = probability_separation(
        torch.tensor([p for p, _ in pairs], dtype=torch.float64),
        torch.tensor([b for _, b in pairs]),
    )
    if not pos or not neg:
        assert got is None
    else:
        assert got == pytest.approx(math.fsum(pos) / len(pos) - math.fsum(neg) / len(neg))
