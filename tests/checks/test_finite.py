"""Unit tests for the ``finite`` kind (INV-TRAIN-001)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.finite import Finite, FiniteParams, check_finite

from .conftest import SCRATCH, maker

make = maker(Finite, SCRATCH)


def test_registered() -> None:
    assert REGISTRY["finite"] is Finite


def test_finite_step_passes() -> None:
    check = make()
    check.update({"step": 3, "loss": 2.5, "grad_norm": 0.7})
    decision = check.verdict()
    assert decision is not None and decision.ok
    assert decision.metrics == {"loss": 2.5, "grad_norm": 0.7}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_fires(bad: float) -> None:
    check = make()
    check.update({"loss": bad, "grad_norm": 1.0})
    decision = check.verdict()
    assert decision is not None and not decision.ok
    assert "loss" in decision.detail and decision.comparison == "finite"
    assert decision.observed != decision.observed or math.isinf(decision.observed)


def test_non_finite_grad_norm_fires() -> None:
    check = make()
    check.update({"loss": 1.0, "grad_norm": math.inf})
    decision = check.verdict()
    assert decision is not None and not decision.ok
    assert decision.detail.startswith("non-finite grad_norm")
    assert decision.observed == math.inf


def test_absent_grad_norm_is_skipped() -> None:
    check = make()
    check.update({"loss": 1.0})
    decision = check.verdict()
    assert decision is not None and decision.ok
    assert set(decision.metrics) == {"loss"}


def test_nothing_to_check_is_not_evaluated() -> None:
    check = make()
    assert check.verdict() is None
    check.update({"step": 1, "grad_norm": None})
    assert check.verdict() is None
    assert (
        check_finite(observed={"lr": math.nan}, params=FiniteParams(observations=["loss"])) is None
    )


def test_verdict_is_about_the_latest_step() -> None:
    check = make()
    check.update({"loss": math.nan})
    check.update({"loss": 1.0})
    decision = check.verdict()
    assert decision is not None and decision.ok


def test_validation_point_checks_val_loss() -> None:
    check = make(observations=["val_loss"])
    check.update({"epoch": 0, "val_loss": math.nan, "loss": 1.0})
    decision = check.verdict()
    assert decision is not None and not decision.ok and "val_loss" in decision.detail


@pytest.mark.parametrize(
    "params",
    [{"observations": []}, {"observations": ["loss", "loss"]}, {"observation": ["loss"]}],
)
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FiniteParams.model_validate(params)
