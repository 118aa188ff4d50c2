"""Liveness kinds (seed 002): each passes on a healthy model and fires on the collapse."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.decision import CheckContext
from traingate.checks.liveness import (
    DistinctPredictions,
    DistinctPredictionsParams,
    EmbeddingClusters,
    EmbeddingClustersParams,
    EmbeddingCollapse,
    EmbeddingCollapseParams,
    MacroF1,
    MacroF1Params,
    PredictionShare,
    PredictionShareParams,
    check_distinct_predictions,
    check_embedding_clusters,
    check_embedding_collapse,
    check_macro_f1,
    check_prediction_share,
    is_judged,
)
from traingate.contract.regime import Finetune, FromScratch

from .conftest import verdict_after

CONTEXT = CheckContext(Finetune())
# Seed 002's liveness gate.
GATE = {
    DistinctPredictions: DistinctPredictionsParams(min_distinct=10),
    MacroF1: MacroF1Params(min_f1=0.10),
    PredictionShare: PredictionShareParams(max_share=0.5),
    EmbeddingCollapse: EmbeddingCollapseParams(min_ratio=0.01),
    EmbeddingClusters: EmbeddingClustersParams(min_clusters=3),
}
CURRENCY = 7


def seed_002_observation() -> dict[str, torch.Tensor]:
    """1500 validation samples over 82 labels; one label predicted for all; every pooled
    embedding a common vector of norm 6.98 plus noise, max pairwise L2 0.020."""
    g = torch.Generator().manual_seed(0)
    common = torch.randn(384, generator=g, dtype=torch.float64)
    noise = torch.randn(1500, 384, generator=g, dtype=torch.float64)
    noise = noise / noise.norm(dim=1, keepdim=True) * 0.010 * torch.rand(1500, 1, generator=g)
    noise[0] = common / common.norm() * 0.010
    noise[1] = -noise[0]
    return {
        "predictions": torch.full((1500,), CURRENCY),
        "labels": torch.arange(1500) % 82,
        "embeddings": (common / common.norm() * 6.98 + noise).float(),
    }


def healthy_observation(random_features: bool = False) -> dict[str, torch.Tensor]:
    """400 samples over 20 labels, 80 % right; embeddings clustered by label (or iid)."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(400) % 20
    wrong = torch.rand(400, generator=g) < 0.2
    predictions = torch.where(wrong, (labels + 1) % 20, labels)
    if random_features:
        embeddings = torch.randn(400, 384, generator=g)
    else:
        centres = torch.randn(20, 384, generator=g)
        embeddings = centres[labels] + 0.05 * torch.randn(400, 384, generator=g)
    return {"predictions": predictions, "labels": labels, "embeddings": embeddings}


def run(kind: type, params: object, *observations: dict[str, torch.Tensor]):
    return verdict_after(kind(params, CONTEXT), *observations)


def test_kinds_are_registered_for_validation() -> None:
    for kind in GATE:
        assert REGISTRY[kind.kind] is kind
        assert kind.points == frozenset({"validation"})
        assert kind.requires <= set(kind.gather)


@pytest.mark.parametrize("kind", list(GATE), ids=lambda k: k.kind)
def test_seed_002_collapse_fires(kind: type) -> None:
    decision = run(kind, GATE[kind], seed_002_observation())
    assert decision is not None and not decision.ok


def test_seed_002_observed_values() -> None:
    obs = seed_002_observation()
    assert run(DistinctPredictions, GATE[DistinctPredictions], obs).observed == 1.0
    assert run(PredictionShare, GATE[PredictionShare], obs).observed == 1.0
    assert run(MacroF1, GATE[MacroF1], obs).observed < 0.001
    collapse = run(EmbeddingCollapse, GATE[EmbeddingCollapse], obs)
    assert collapse.observed == pytest.approx(0.020 / 6.98, rel=1e-3)
    assert collapse.metrics["max_pairwise_distance"] == pytest.approx(0.020, rel=1e-4)
    assert collapse.metrics["effective_rank"] < 1.5
    assert run(EmbeddingClusters, GATE[EmbeddingClusters], obs).observed == 1.0


@pytest.mark.parametrize("random_features", [False, True], ids=["clustered", "random"])
@pytest.mark.parametrize("kind", list(GATE), ids=lambda k: k.kind)
def test_healthy_model_passes(kind: type, random_features: bool) -> None:
    decision = run(kind, GATE[kind], healthy_observation(random_features))
    assert decision is not None and decision.ok, decision


# -- exact boundaries of the pure decisions ------------------------------------------------


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


RANK = {"effective_rank": 2.0}  # reported by the collapse decision, never gated
# Each pure decision with the value it reads: at the limit it holds, one float past it fires.
BOUNDARIES = [
    (check_distinct_predictions, DistinctPredictions, "distinct", 10, 9, {"labels_in_gold": 82}),
    (check_macro_f1, MacroF1, "f1", 0.10, below(0.10), {}),
    (check_prediction_share, PredictionShare, "share", 0.5, above(0.5), {"top_label": 3}),
    (check_embedding_collapse, EmbeddingCollapse, "ratio", 0.01, below(0.01), RANK),
    (check_embedding_clusters, EmbeddingClusters, "clusters", 3, 2, {}),
]


@pytest.mark.parametrize(
    ("decide", "kind", "name", "at", "past", "rest"),
    [pytest.param(*row, id=row[1].kind) for row in BOUNDARIES],
)
def test_exact_boundaries_of_the_pure_decisions(
    decide, kind: type, name: str, at: float, past: float, rest: dict[str, float]
) -> None:
    assert decide(**{name: at}, **rest, params=GATE[kind], context=CONTEXT).ok
    assert not decide(**{name: past}, **rest, params=GATE[kind], context=CONTEXT).ok


def test_distinct_floor_is_capped_by_the_gold_labels() -> None:
    params = GATE[DistinctPredictions]
    capped = check_distinct_predictions(
        distinct=5, labels_in_gold=5, params=params, context=CONTEXT
    )  # a 5-class validation set
    assert capped.ok and capped.limit == 5.0 and capped.evaluated == "min(10, 5) = 5"
    assert not check_distinct_predictions(
        distinct=4, labels_in_gold=5, params=params, context=CONTEXT
    ).ok


def test_macro_f1_of_nan_fires() -> None:
    assert not check_macro_f1(f1=math.nan, params=GATE[MacroF1], context=CONTEXT).ok


def test_thresholds_may_be_formulas_and_regime_keyed() -> None:
    params = MacroF1Params.model_validate({"min_f1": {"finetune": 0.1, "from_scratch": "1 / 20"}})
    scratch = check_macro_f1(f1=0.06, params=params, context=CheckContext(FromScratch(100)))
    assert scratch.ok and scratch.limit == 0.05 and scratch.formula == "1 / 20"
    assert not check_macro_f1(f1=0.06, params=params, context=CONTEXT).ok
    share = PredictionShareParams.model_validate({"max_share": "2 / num_labels"})
    assert not check_prediction_share(
        share=0.3, top_label=1, params=share, context=CheckContext(Finetune(), {"num_labels": 10})
    ).ok


# -- the stateful checks -------------------------------------------------------------------


def test_batches_accumulate_until_the_verdict() -> None:
    obs = healthy_observation()
    halves = [{k: v[:200] for k, v in obs.items()}, {k: v[200:] for k, v in obs.items()}]
    whole = run(MacroF1, GATE[MacroF1], obs)
    split = run(MacroF1, GATE[MacroF1], *halves)
    assert split.observed == whole.observed


def test_the_next_validation_starts_fresh_after_a_verdict() -> None:
    check = DistinctPredictions(GATE[DistinctPredictions], CONTEXT)
    assert check.verdict() is None
    check.update(seed_002_observation())
    first = check.verdict()
    assert not first.ok and check.verdict() is first
    check.update(healthy_observation())
    second = check.verdict()
    assert second.ok and second.observed == 20.0
    check.reset()
    assert check.verdict() is None


def test_padding_positions_are_dropped() -> None:
    obs = healthy_observation()
    padded = {
        "predictions": torch.cat([obs["predictions"], torch.zeros(2000, dtype=torch.long)]),
        "labels": torch.cat([obs["labels"], torch.full((2000,), -100)]),
    }
    decision = run(PredictionShare, GATE[PredictionShare], padded)
    assert decision.ok and decision.observed < 0.1
    assert (
        run(PredictionShare, GATE[PredictionShare], {"predictions": padded["predictions"]}).observed
        > 0.8
    )


def test_token_tensors_are_flattened() -> None:
    obs = healthy_observation()
    tokens = {
        "predictions": obs["predictions"].reshape(20, 20),
        "labels": obs["labels"].reshape(20, 20),
    }
    assert run(MacroF1, GATE[MacroF1], tokens).observed == run(MacroF1, GATE[MacroF1], obs).observed


def test_wiring_errors_are_loud() -> None:
    check = MacroF1(GATE[MacroF1], CONTEXT)
    with pytest.raises(KeyError):
        check.update({"predictions": torch.zeros(3, dtype=torch.long)})
    check.update({"predictions": torch.zeros(3, dtype=torch.long), "labels": torch.zeros(4)})
    with pytest.raises(ValueError):
        check.verdict()


def test_too_little_data_is_not_evaluated() -> None:
    one = {"embeddings": torch.ones(1, 8)}
    assert run(EmbeddingCollapse, GATE[EmbeddingCollapse], one) is None
    empty = {"predictions": torch.zeros(0, dtype=torch.long), "labels": torch.zeros(0)}
    assert run(DistinctPredictions, GATE[DistinctPredictions], empty) is None


def test_params_are_strict() -> None:
    with pytest.raises(ValidationError):
        EmbeddingClustersParams.model_validate({"min_clusters": 3, "inflation": 1.0})
    with pytest.raises(ValidationError):
        EmbeddingClustersParams.model_validate({"min_clusters": 3, "k": "10"})
    with pytest.raises(ValidationError):
        DistinctPredictionsParams.model_validate({"min_distinct": 10, "typo": 1})
    params = EmbeddingClustersParams(min_clusters=3)
    assert (params.inflation, params.k, params.max_points) == (1.4, 10, 600)


def test_validations_before_from_step_or_from_epoch_are_not_judged() -> None:
    params = DistinctPredictionsParams(min_distinct=10, from_step=20_000, from_epoch=2)
    assert not is_judged(params, 19_999, 5)
    assert not is_judged(params, 20_000, 1)
    assert is_judged(params, 20_000, 2)
    assert not is_judged(params, None, 2)  # an unknown step cannot be past 20k
    assert is_judged(DistinctPredictionsParams(min_distinct=10), None, None)
    check = DistinctPredictions(params, CONTEXT)
    collapsed = seed_002_observation()
    check.update({**collapsed, "step": 19_999, "epoch": 3})
    assert check.verdict() is None
    check.update({**collapsed, "step": 20_000, "epoch": 3})
    assert not check.verdict().ok
