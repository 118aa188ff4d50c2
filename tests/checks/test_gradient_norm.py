"""Unit tests for the ``gradient_norm`` kind (INV-TRAIN-002)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.gradient_norm import GradientNorm, GradientNormParams, check_gradient_norm

from .conftest import FINETUNE, SCRATCH, maker, scalar_feed

make = maker(GradientNorm, SCRATCH)
feed = scalar_feed("grad_norm")


def test_registered_with_seed_004_defaults() -> None:
    assert REGISTRY["gradient_norm"] is GradientNorm
    params = GradientNormParams()
    assert (params.min_norm.evaluate({}), params.max_norm.evaluate({})) == (1e-3, 100.0)
    assert params.patience == 5


def test_healthy_norms_pass() -> None:
    decisions = feed(make(), [15.28, 29.96, 5.99])  # seed 004's logged norms
    assert all(d is not None and d.ok and d.metrics["streak"] == 0 for d in decisions)


@pytest.mark.parametrize("norm", [1e-3, 100.0])
def test_exact_bounds_are_in_range(norm: float) -> None:
    decision = check_gradient_norm(
        norm=norm,
        streak=10,
        params=GradientNormParams(patience=1),
        context=FINETUNE,
    )
    assert decision.ok and decision.metrics["streak"] == 0


def test_exploding_fires_at_patience() -> None:
    decisions = feed(make(), [math.nextafter(100.0, math.inf)] * 5)
    assert [d.ok for d in decisions if d] == [True, True, True, True, False]
    last = decisions[-1]
    assert last is not None
    assert last.metrics["exploding"] == 1.0 and last.metrics["vanishing"] == 0.0
    assert last.comparison == "<=" and last.limit == 100.0 and "exploding" in last.detail


def test_vanishing_fires_at_patience() -> None:
    decisions = feed(make(patience=2), [math.nextafter(1e-3, 0.0)] * 2)
    assert [d.ok for d in decisions if d] == [True, False]
    last = decisions[-1]
    assert last is not None
    assert last.metrics["vanishing"] == 1.0 and last.comparison == ">=" and last.limit == 1e-3
    assert "vanishing" in last.detail and "detached" in last.hint


def test_in_range_step_resets_the_streak() -> None:
    decisions = feed(make(patience=3), [500.0, 500.0, 1.0, 500.0, 500.0, 500.0])
    assert [d.metrics["streak"] for d in decisions if d] == [1, 2, 0, 1, 2, 3]
    assert [d.ok for d in decisions if d] == [True, True, True, True, True, False]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_counts_as_exploding(bad: float) -> None:
    decision = check_gradient_norm(
        norm=bad, streak=0, params=GradientNormParams(patience=1), context=FINETUNE
    )
    assert not decision.ok and decision.metrics["exploding"] == 1.0


def test_mixed_sides_share_one_streak() -> None:
    decisions = feed(make(patience=2), [1e-9, 1e9])
    last = decisions[-1]
    assert last is not None and not last.ok and last.metrics["exploding"] == 1.0


def test_step_without_grad_norm_is_not_evaluated() -> None:
    check = make(patience=2)
    feed(check, [1e9])
    check.update({"loss": 1.0})
    assert check.verdict() is None
    assert feed(check, [1e9])[-1].ok is False  # type: ignore[union-attr]


def test_thresholds_may_be_formulas() -> None:
    params = GradientNormParams.model_validate(
        {"max_norm": {"finetune": "10", "from_scratch": "ln(vocab_size) * 10"}, "patience": 1}
    )
    scratch = check_gradient_norm(norm=50.0, streak=0, params=params, context=SCRATCH)
    tuned = check_gradient_norm(norm=50.0, streak=0, params=params, context=FINETUNE)
    assert scratch.ok and not tuned.ok
    assert tuned.formula == "10"


def test_inverted_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="above max_norm"):
        check_gradient_norm(
            norm=1.0,
            streak=0,
            params=GradientNormParams(min_norm=5, max_norm=1),
            context=FINETUNE,
        )


@pytest.mark.parametrize("params", [{"patience": 0}, {"patience": 2.0}, {"max": 3}])
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GradientNormParams.model_validate(params)
