"""Calibration metrics: how sure is the model when it is wrong, and does it separate classes?

Seed 000 names two different numbers that a report conflated: the 90th-percentile confidence
of wrong predictions (0.949 in both arms) and the share of wrong predictions emitted at
confidence ≥ 0.9. Both are here, under their own names, with binned ECE beside them. Seed
004's "probability separation" (mean probability on in-span positions minus on out-span
positions, 0.0036 at epoch 100) is :func:`probability_separation`.

Confidence is the probability the model gave its emitted prediction, p_i[ŷ_i], not the row
maximum, so a decoder that does not take the argmax (a CRF, a threshold) is judged on what
it actually said.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from traingate.metrics.confusion import members

__all__ = [
    "confident_error_share",
    "error_count",
    "expected_calibration_error",
    "positive_class_probability",
    "prediction_confidence",
    "probability_separation",
    "quantile",
    "wrong_confidence_quantile",
]


def prediction_confidence(probabilities: Tensor, predictions: Tensor) -> Tensor:
    """conf_i = p_i[ŷ_i] for ``probabilities`` (N, C) and ``predictions`` (N,), as float64."""
    if probabilities.ndim != 2 or probabilities.shape[0] != predictions.numel():
        raise ValueError(
            f"probabilities {tuple(probabilities.shape)} must be (N, C) for {predictions.numel()} "
            "predictions"
        )
    index = predictions.reshape(-1, 1).long()
    return probabilities.gather(1, index).reshape(-1).double()


def quantile(values: Tensor, q: float) -> float:
    """The q-quantile of ``values`` with linear interpolation between order statistics
    (numpy's default): position q·(n − 1) in the sorted values. No size limit."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    ordered = values.reshape(-1).double().sort().values
    if ordered.numel() == 0:
        raise ValueError("the quantile of no values is undefined")
    position = q * (ordered.numel() - 1)
    lo, hi = math.floor(position), math.ceil(position)
    low, high = ordered[lo].item(), ordered[hi].item()
    return low + (high - low) * (position - lo)


def error_count(predictions: Tensor, labels: Tensor) -> int:
    """#{i : ŷ_i ≠ y_i}: how many predictions are wrong."""
    return int((predictions.reshape(-1) != labels.reshape(-1)).sum().item())


def wrong_confidence_quantile(
    probabilities: Tensor, predictions: Tensor, labels: Tensor, q: float = 0.9
) -> float | None:
    """The q-quantile (default p90) of conf_i over wrong predictions (ŷ_i ≠ y_i); ``None``
    when nothing is wrong (the quantile of an empty set)."""
    wrong = predictions.reshape(-1) != labels.reshape(-1)
    if not bool(wrong.any()):
        return None
    return quantile(prediction_confidence(probabilities, predictions)[wrong], q)


def confident_error_share(
    probabilities: Tensor, predictions: Tensor, labels: Tensor, threshold: float = 0.9
) -> float | None:
    """#{wrong, conf_i ≥ threshold} / #{wrong}: the share of errors made confidently.

    ``None`` when nothing is wrong. The denominator is the wrong predictions, not all of them:
    seed 000's pathology was "~81 % of wrong predictions at ≥ 0.9".
    """
    count = error_count(predictions, labels)
    if count == 0:
        return None
    wrong = predictions.reshape(-1) != labels.reshape(-1)
    confident = prediction_confidence(probabilities, predictions)[wrong] >= threshold
    return int(confident.sum().item()) / count


def expected_calibration_error(
    probabilities: Tensor, predictions: Tensor, labels: Tensor, n_bins: int = 15
) -> float:
    """Binned ECE = Σ_b (|B_b| / N) · |acc(B_b) − mean conf(B_b)| over ``n_bins`` equal-width
    confidence bins ((0, 1/n], (1/n, 2/n], …, with conf = 0 in the first bin).

    acc(B) is the share of correct predictions (ŷ = y) in the bin; empty bins contribute 0.
    """
    if n_bins < 1:
        raise ValueError("ECE needs at least one bin")
    conf = prediction_confidence(probabilities, predictions)
    n = conf.numel()
    if n == 0:
        raise ValueError("ECE needs at least one prediction")
    correct = (predictions.reshape(-1) == labels.reshape(-1)).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp_(0, n_bins - 1)
    conf_sum = torch.bincount(bins, weights=conf, minlength=n_bins)
    correct_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return float(((correct_sum - conf_sum).abs().sum() / n).item())


def positive_class_probability(
    probabilities: Tensor, labels: Tensor, positive_labels: Iterable[int]
) -> tuple[Tensor, Tensor]:
    """(P(positive) per position, whether its gold label is positive) for the class set
    ``positive_labels``: with ``probabilities`` (N, C), P(positive) sums those columns; with
    (N,), it already is P(positive) (e.g. a sigmoid head)."""
    ids = sorted(set(positive_labels))
    if probabilities.ndim == 2:
        columns = torch.tensor(ids, dtype=torch.long, device=probabilities.device)
        p_positive = probabilities[:, columns].sum(dim=1)
    else:
        p_positive = probabilities
    return p_positive, members(labels, ids)


def probability_separation(positive_probability: Tensor, positive: Tensor) -> float | None:
    """mean(p_i | i positive) − mean(p_i | i negative): how far apart the model puts the
    probability of the positive class on positive and on negative positions.

    ``positive_probability`` (N,) is the probability given to the positive class, ``positive``
    (N,) bool the gold membership. ``None`` when either side is empty (nothing to separate).
    Near 0 means the probabilities carry no signal (seed 004: 0.065 vs 0.061 → 0.0036).
    """
    p = positive_probability.reshape(-1).double()
    pos = positive.reshape(-1).bool()
    if p.shape != pos.shape:
        raise ValueError(f"probabilities {tuple(p.shape)} and membership {tuple(pos.shape)} differ")
    if not bool(pos.any()) or bool(pos.all()):
        return None
    return float((p[pos].mean() - p[~pos].mean()).item())
