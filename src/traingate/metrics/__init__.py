"""Numeric metrics behind the validation-time invariants: pure functions on tensors.

Unlike :mod:`traingate.checks`, these modules import torch at top level; the checks import
them lazily, inside the methods that need tensors.
"""

from traingate.metrics.calibration import (
    confident_error_share,
    expected_calibration_error,
    prediction_confidence,
    probability_separation,
    quantile,
    wrong_confidence_quantile,
)
from traingate.metrics.confusion import ConfusionCounts, ConfusionReport, confusion_rate
from traingate.metrics.liveness import (
    collapse_ratio,
    cosine_knn_graph,
    distinct_labels,
    effective_rank,
    macro_f1,
    max_pairwise_distance,
    mcl,
    mcl_clusters,
    mean_norm,
    top1_share,
)

__all__ = [
    "ConfusionCounts",
    "ConfusionReport",
    "collapse_ratio",
    "confident_error_share",
    "confusion_rate",
    "cosine_knn_graph",
    "distinct_labels",
    "effective_rank",
    "expected_calibration_error",
    "macro_f1",
    "max_pairwise_distance",
    "mcl",
    "mcl_clusters",
    "mean_norm",
    "prediction_confidence",
    "probability_separation",
    "quantile",
    "top1_share",
    "wrong_confidence_quantile",
]
