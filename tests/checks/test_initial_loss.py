"""Unit tests for the ``initial_loss`` kind (INV-TRAIN-004)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.decision import CheckContext
from traingate.checks.initial_loss import InitialLoss, InitialLossParams, check_initial_loss
from traingate.contract.regime import Finetune, FromScratch

from .conftest import FINETUNE, build

VOCAB = 50257
LN_V = math.log(VOCAB)
SCRATCH = FromScratch(VOCAB)
PARAMS = InitialLossParams.model_validate({"num_classes": "vocab_size"})


def make(regime: Finetune | FromScratch = SCRATCH, **params: object) -> InitialLoss:
    return build(InitialLoss, CheckContext(regime), **{"num_classes": "vocab_size", **params})


def test_registered_with_default_tolerance() -> None:
    assert REGISTRY["initial_loss"] is InitialLoss
    assert PARAMS.tolerance.evaluate({}) == 0.5


def test_cold_start_near_ln_vocab_passes() -> None:
    check = make()
    check.update({"step": 0, "loss": 10.93})
    decision = check.verdict()
    assert decision is not None and decision.ok
    assert decision.metrics["ln_num_classes"] == pytest.approx(LN_V)
    assert decision.formula == "(1 + 0.5) * ln(vocab_size)"


def test_far_above_fires_with_an_init_hint() -> None:
    decision = check_initial_loss(loss=2.0 * LN_V, params=PARAMS, context=CheckContext(SCRATCH))
    assert not decision.ok and decision.comparison == "<="
    assert decision.limit == pytest.approx(1.5 * LN_V)
    assert "above" in decision.detail and "init" in decision.hint


def test_far_below_fires_with_a_leakage_hint() -> None:
    decision = check_initial_loss(loss=0.3 * LN_V, params=PARAMS, context=CheckContext(SCRATCH))
    assert not decision.ok and decision.comparison == ">="
    assert decision.limit == pytest.approx(0.5 * LN_V)
    assert decision.formula == "(1 - 0.5) * ln(vocab_size)"
    assert "below" in decision.detail and "leak" in decision.hint and "trivial" in decision.hint


def test_exact_bounds_pass_and_one_ulp_outside_fires() -> None:
    upper, lower = 1.5 * LN_V, 0.5 * LN_V
    assert check_initial_loss(loss=upper, params=PARAMS, context=CheckContext(SCRATCH)).ok
    assert check_initial_loss(loss=lower, params=PARAMS, context=CheckContext(SCRATCH)).ok
    assert not check_initial_loss(
        loss=math.nextafter(upper, math.inf), params=PARAMS, context=CheckContext(SCRATCH)
    ).ok
    assert not check_initial_loss(
        loss=math.nextafter(lower, 0.0), params=PARAMS, context=CheckContext(SCRATCH)
    ).ok


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_fires(bad: float) -> None:
    decision = check_initial_loss(loss=bad, params=PARAMS, context=CheckContext(SCRATCH))
    assert not decision.ok and decision.comparison == "finite"


def test_only_the_first_loss_counts() -> None:
    check = make()
    assert check.verdict() is None
    check.update({"step": 0, "grad_norm": 1.0})  # no loss yet: not evaluated
    assert check.verdict() is None
    check.update({"step": 0, "loss": 100.0})
    first = check.verdict()
    assert first is not None and not first.ok
    check.update({"step": 1, "loss": 10.8})
    assert check.verdict() is None
    assert check.state_dict()["initial_loss"] == 100.0


def test_regime_keyed_tolerance_switches_the_lower_side_off_for_finetune() -> None:
    params = InitialLossParams.model_validate(
        {"num_classes": 10, "tolerance": {"finetune": 1.0, "from_scratch": 0.5}}
    )
    assert check_initial_loss(loss=0.01, params=params, context=FINETUNE).ok
    assert not check_initial_loss(loss=0.01, params=params, context=CheckContext(SCRATCH)).ok
    assert not check_initial_loss(
        loss=2.0 * math.log(10) + 0.01, params=params, context=FINETUNE
    ).ok


def test_degenerate_values_are_errors() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        check_initial_loss(
            loss=1.0, params=InitialLossParams(num_classes=1), context=CheckContext(SCRATCH)
        )
    with pytest.raises(ValueError, match="non-negative"):
        check_initial_loss(
            loss=1.0,
            params=InitialLossParams(num_classes=2, tolerance=-0.1),
            context=CheckContext(SCRATCH),
        )


@pytest.mark.parametrize("params", [{}, {"num_classes": True}, {"num_classes": "ln("}])
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        InitialLossParams.model_validate(params)
