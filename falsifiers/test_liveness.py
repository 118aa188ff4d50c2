"""Falsifiers for C-LIVENESS (INV-LIVE-001..005): seed 002's liveness gate.

Each property reads the params from the shipped contract and calls the decision the Guard
runs, at the exact boundary, so changing a number in the YAML or a comparison in the code
fails here. The last two run the registered checks on seed 002's collapse and on healthy
encoders, end to end.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.checks import REGISTRY, CheckContext
from traingate.checks.liveness import (
    check_distinct_predictions,
    check_embedding_clusters,
    check_embedding_collapse,
    check_macro_f1,
    check_prediction_share,
    is_judged,
)
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

IDS = ("INV-LIVE-001", "INV-LIVE-002", "INV-LIVE-003", "INV-LIVE-004", "INV-LIVE-005")
DISTINCT, MACRO_F1, SHARE, COLLAPSE, CLUSTERS = (invariant(i) for i in IDS)

MIN_DISTINCT, MIN_F1, MAX_SHARE, MIN_RATIO, MIN_CLUSTERS = 10, 0.10, 0.5, 0.01, 3
SEED_002_RATIO = 0.020 / 6.98  # max pairwise L2 / mean norm of the collapsed embeddings
REGIMES = st.sampled_from([Finetune(), FromScratch(65536)])
unit = st.floats(min_value=0.0, max_value=1.0)


@given(st.integers(MIN_DISTINCT, 1000), st.integers(0, 1000), REGIMES)
def test_at_least_ten_distinct_labels(gold: int, distinct: int, regime) -> None:
    decision = check_distinct_predictions(
        distinct=distinct, labels_in_gold=gold, params=DISTINCT.params, context=CheckContext(regime)
    )
    assert decision.ok == (distinct >= MIN_DISTINCT)
    assert decision.limit == MIN_DISTINCT
    assert check_distinct_predictions(
        distinct=MIN_DISTINCT,
        labels_in_gold=gold,
        params=DISTINCT.params,
        context=CheckContext(regime),
    ).ok
    assert not check_distinct_predictions(
        distinct=MIN_DISTINCT - 1,
        labels_in_gold=gold,
        params=DISTINCT.params,
        context=CheckContext(regime),
    ).ok


@given(st.integers(1, MIN_DISTINCT - 1), REGIMES)
def test_distinct_floor_is_capped_by_the_gold_labels(gold: int, regime) -> None:
    assert check_distinct_predictions(
        distinct=gold, labels_in_gold=gold, params=DISTINCT.params, context=CheckContext(regime)
    ).ok
    assert not check_distinct_predictions(
        distinct=gold - 1, labels_in_gold=gold, params=DISTINCT.params, context=CheckContext(regime)
    ).ok


@given(unit, REGIMES)
def test_macro_f1_floor_is_a_tenth(f1: float, regime) -> None:
    assert check_macro_f1(f1=f1, params=MACRO_F1.params, context=CheckContext(regime)).ok == (
        f1 >= MIN_F1
    )
    assert check_macro_f1(f1=MIN_F1, params=MACRO_F1.params, context=CheckContext(regime)).ok
    assert not check_macro_f1(
        f1=math.nextafter(MIN_F1, 0.0), params=MACRO_F1.params, context=CheckContext(regime)
    ).ok
    assert not check_macro_f1(f1=math.nan, params=MACRO_F1.params, context=CheckContext(regime)).ok


@given(unit, st.integers(0, 100), REGIMES)
def test_top_label_share_is_at_most_half(share: float, label: int, regime) -> None:
    assert check_prediction_share(
        share=share, top_label=label, params=SHARE.params, context=CheckContext(regime)
    ).ok == (share <= MAX_SHARE)
    assert check_prediction_share(
        share=MAX_SHARE, top_label=label, params=SHARE.params, context=CheckContext(regime)
    ).ok
    above = math.nextafter(MAX_SHARE, 1.0)
    assert not check_prediction_share(
        share=above, top_label=label, params=SHARE.params, context=CheckContext(regime)
    ).ok
    assert not check_prediction_share(
        share=1.0, top_label=label, params=SHARE.params, context=CheckContext(regime)
    ).ok  # seed 002


@given(st.floats(0.0, 10.0), st.floats(1.0, 384.0), REGIMES)
def test_embedding_spread_is_at_least_one_percent_of_the_norm(
    ratio: float, rank: float, regime
) -> None:
    decision = check_embedding_collapse(
        ratio=ratio, effective_rank=rank, params=COLLAPSE.params, context=CheckContext(regime)
    )
    assert decision.ok == (ratio >= MIN_RATIO)
    assert decision.metrics["effective_rank"] == rank  # reported, never gated
    assert check_embedding_collapse(
        ratio=MIN_RATIO, effective_rank=1.0, params=COLLAPSE.params, context=CheckContext(regime)
    ).ok
    below = math.nextafter(MIN_RATIO, 0.0)
    assert not check_embedding_collapse(
        ratio=below, effective_rank=384.0, params=COLLAPSE.params, context=CheckContext(regime)
    ).ok
    assert not check_embedding_collapse(
        ratio=SEED_002_RATIO,
        effective_rank=1.0,
        params=COLLAPSE.params,
        context=CheckContext(regime),
    ).ok


@given(st.integers(0, 200), REGIMES)
def test_at_least_three_clusters_at_coarse_inflation(clusters: int, regime) -> None:
    params = CLUSTERS.params
    assert (params.inflation, params.k, params.max_points) == (1.4, 10, 600)
    decision = check_embedding_clusters(
        clusters=clusters, params=params, context=CheckContext(regime)
    )
    assert decision.ok == (clusters >= MIN_CLUSTERS) and decision.limit == MIN_CLUSTERS
    assert check_embedding_clusters(
        clusters=MIN_CLUSTERS, params=params, context=CheckContext(regime)
    ).ok
    assert not check_embedding_clusters(
        clusters=MIN_CLUSTERS - 1, params=params, context=CheckContext(regime)
    ).ok
    assert not check_embedding_clusters(
        clusters=1, params=params, context=CheckContext(regime)
    ).ok  # seed 002


@given(st.sampled_from(IDS), st.none() | st.integers(0, 10**7), st.none() | st.integers(0, 10**4))
def test_every_validation_is_judged(inv_id: str, step: int | None, epoch: int | None) -> None:
    params = invariant(inv_id).params
    assert is_judged(params, step, epoch)
    # the window opens exactly at from_step / from_epoch (0 here, so always open)
    if step is not None and epoch is not None:
        later = params.model_copy(update={"from_step": step + 1, "from_epoch": epoch})
        assert not is_judged(later, step, epoch) and is_judged(later, step + 1, epoch)
        later = params.model_copy(update={"from_step": step, "from_epoch": epoch + 1})
        assert not is_judged(later, step, epoch) and is_judged(later, step, epoch + 1)


def seed_002(n: int = 1500) -> dict[str, torch.Tensor]:
    """1500 samples over 82 labels, `currency` predicted for all, every embedding a common
    vector of norm 6.98 plus noise in a ball of radius 0.010 (max pairwise L2 0.020)."""
    g = torch.Generator().manual_seed(2)
    common = torch.randn(384, generator=g, dtype=torch.float64)
    common = common / common.norm() * 6.98
    noise = torch.randn(n, 384, generator=g, dtype=torch.float64)
    noise = noise / noise.norm(dim=1, keepdim=True) * 0.010 * torch.rand(n, 1, generator=g)
    noise[0] = common / 698.0
    noise[1] = -noise[0]
    return {
        "predictions": torch.full((n,), 7),
        "labels": torch.arange(n) % 82,
        "embeddings": (common + noise).float(),
        "step": 20_000,
        "epoch": 2,
    }


def decide(inv_id: str, observation: dict[str, object]):
    inv = invariant(inv_id)
    check = REGISTRY[inv.check](inv.params, CheckContext(Finetune()))
    check.update(observation)
    return check.verdict()


def test_seed_002_collapse_fails_every_liveness_invariant() -> None:
    obs = seed_002()
    decisions = {inv_id: decide(inv_id, obs) for inv_id in IDS}
    assert all(d is not None and not d.ok for d in decisions.values()), decisions
    assert decisions["INV-LIVE-001"].observed == 1.0
    assert decisions["INV-LIVE-003"].observed == 1.0
    assert math.isclose(decisions["INV-LIVE-004"].observed, SEED_002_RATIO, rel_tol=1e-3)
    assert decisions["INV-LIVE-005"].observed == 1.0


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 2**16), st.booleans())
def test_healthy_encoder_passes_every_liveness_invariant(seed: int, iid: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(240) % 20
    predictions = torch.where(torch.rand(240, generator=g) < 0.25, (labels + 1) % 20, labels)
    centres = torch.randn(20, 384, generator=g)
    embeddings = (
        torch.randn(240, 384, generator=g)
        if iid
        else centres[labels] + 0.3 * torch.randn(240, 384, generator=g)
    )
    obs = {"predictions": predictions, "labels": labels, "embeddings": embeddings, "epoch": 0}
    for inv_id in IDS:
        decision = decide(inv_id, obs)
        assert decision is not None and decision.ok, (inv_id, decision)
