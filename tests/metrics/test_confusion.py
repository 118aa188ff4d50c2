"""Confusion-rate metric against brute-force counting (seed 001's city-start tripwires)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.metrics.confusion import ConfusionCounts, ConfusionReport, confusion_rate

OUTSIDE, B_CITY, I_CITY, B_POSTCODE = 0, 1, 2, 3


def test_seed_001_the_postcode_wire_reads_zero_while_o_carries_the_collapse() -> None:
    gold = torch.tensor([B_CITY, I_CITY, B_POSTCODE, B_CITY, B_CITY, B_CITY, OUTSIDE])
    pred = torch.tensor([OUTSIDE, I_CITY, B_POSTCODE, OUTSIDE, B_CITY, OUTSIDE, OUTSIDE])
    locale = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    to_postcode = confusion_rate(pred, gold, [B_CITY], [B_POSTCODE], locale)
    to_o = confusion_rate(pred, gold, [B_CITY], [OUTSIDE], locale)
    assert to_postcode.overall == ConfusionCounts(0, 4)
    assert to_postcode.overall.rate == 0.0
    assert to_o.overall == ConfusionCounts(3, 4)
    assert to_o.by_group == {0: ConfusionCounts(1, 1), 1: ConfusionCounts(2, 3)}


def test_groups_without_gold_a_tokens_are_absent_and_empty_rate_is_none() -> None:
    gold = torch.tensor([OUTSIDE, OUTSIDE, B_CITY])
    pred = torch.tensor([B_CITY, OUTSIDE, B_CITY])
    report = confusion_rate(pred, gold, [B_CITY], [OUTSIDE], torch.tensor([5, 6, 7]))
    assert report.by_group == {7: ConfusionCounts(0, 1)}
    assert confusion_rate(pred, gold, [B_POSTCODE], [OUTSIDE]).overall.rate is None


def test_misaligned_inputs_are_errors() -> None:
    with pytest.raises(ValueError):
        confusion_rate(torch.tensor([0, 1]), torch.tensor([0]), [0], [1])
    with pytest.raises(ValueError):
        confusion_rate(torch.tensor([0, 1]), torch.tensor([0, 1]), [0], [1], torch.tensor([0]))


triples = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3)), max_size=60)
label_sets = st.sets(st.integers(0, 4), min_size=1, max_size=3)


@given(triples, label_sets, label_sets)
@settings(max_examples=80, deadline=None)
def test_counts_match_brute_force(
    data: list[tuple[int, int, int]], from_set: set[int], to_set: set[int]
) -> None:
    pred = torch.tensor([p for p, _, _ in data], dtype=torch.long)
    gold = torch.tensor([g for _, g, _ in data], dtype=torch.long)
    groups = torch.tensor([k for _, _, k in data], dtype=torch.long)
    report = confusion_rate(pred, gold, sorted(from_set), sorted(to_set), groups)
    expected: dict[int, ConfusionCounts] = {}
    for p, g, k in data:
        if g in from_set:
            hit = int(p in to_set)
            expected[k] = expected.get(k, ConfusionCounts(0, 0)) + ConfusionCounts(hit, 1)
    assert dict(report.by_group) == expected
    hits = sum(c.hits for c in expected.values())
    total = sum(c.total for c in expected.values())
    assert report.overall == ConfusionCounts(hits, total)


@given(triples, triples)
@settings(max_examples=40, deadline=None)
def test_merging_shards_equals_counting_everything(
    first: list[tuple[int, int, int]], second: list[tuple[int, int, int]]
) -> None:
    def report(data: list[tuple[int, int, int]]) -> ConfusionReport:
        cols = [torch.tensor([row[i] for row in data], dtype=torch.long) for i in range(3)]
        return confusion_rate(cols[0], cols[1], [1, 2], [0], cols[2])

    assert report(first).merge(report(second)) == report(first + second)
