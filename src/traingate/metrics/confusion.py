"""Confusion tripwires: how often tokens of gold set A are predicted in set B, per group.

Seed 001's pre-registered gate was "city-start tokens mis-tagged as postcode < 1 % per
locale". A tripwire measures exactly one confusion, so the one it names must be the failure
that happens: a city-start → postcode wire can read 0.00 % while city-start → O carries the
collapse. The counts are returned with the rates so that ranks, batches or shards can be
summed before dividing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["ConfusionCounts", "ConfusionReport", "confusion_rate", "members"]


@dataclass(frozen=True)
class ConfusionCounts:
    """``hits`` = #{gold ∈ A, predicted ∈ B}; ``total`` = #{gold ∈ A}."""

    hits: int
    total: int

    @property
    def rate(self) -> float | None:
        """hits / total, or ``None`` when no gold token is in A (nothing was measured)."""
        return self.hits / self.total if self.total else None

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.hits + other.hits, self.total + other.total)


@dataclass(frozen=True)
class ConfusionReport:
    """Counts over all tokens and per group id (only groups with at least one gold-A token)."""

    overall: ConfusionCounts
    by_group: Mapping[int, ConfusionCounts] = field(default_factory=dict)

    def merge(self, other: ConfusionReport) -> ConfusionReport:
        """Sum two reports' counts (e.g. across ranks); rates are re-derived from the sums."""
        groups = dict(self.by_group)
        for key, counts in other.by_group.items():
            groups[key] = groups[key] + counts if key in groups else counts
        return ConfusionReport(self.overall + other.overall, dict(sorted(groups.items())))


def members(values: Tensor, ids: Iterable[int]) -> Tensor:
    """Which of ``values`` are among ``ids`` (a bool tensor shaped like ``values``)."""
    wanted = torch.tensor(sorted(set(ids)), dtype=values.dtype, device=values.device)
    return torch.isin(values, wanted)


def confusion_rate(
    predictions: Tensor,
    labels: Tensor,
    from_labels: Iterable[int],
    to_labels: Iterable[int],
    groups: Tensor | None = None,
) -> ConfusionReport:
    """rate(A→B) = #{i : y_i ∈ A, ŷ_i ∈ B} / #{i : y_i ∈ A}, overall and per ``groups`` id.

    ``predictions``, ``labels`` and ``groups`` are aligned (N,) integer tensors; ``groups``
    (e.g. a locale id per token) is optional.
    """
    pred = predictions.reshape(-1)
    gold = labels.reshape(-1)
    if pred.shape != gold.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(gold.shape)} differ")
    in_a = members(gold, from_labels)
    hit = in_a & members(pred, to_labels)
    overall = ConfusionCounts(int(hit.sum().item()), int(in_a.sum().item()))
    if groups is None:
        return ConfusionReport(overall)
    group = groups.reshape(-1)
    if group.shape != gold.shape:
        raise ValueError(f"groups {tuple(group.shape)} and labels {tuple(gold.shape)} differ")
    ids, inverse = torch.unique(group[in_a], return_inverse=True)
    totals = torch.bincount(inverse, minlength=ids.numel())
    hits = torch.bincount(inverse, weights=hit[in_a].double(), minlength=ids.numel())
    by_group = {
        int(g): ConfusionCounts(int(h), int(t))
        for g, h, t in zip(ids.tolist(), hits.tolist(), totals.tolist(), strict=True)
    }
    return ConfusionReport(overall, by_group)
