"""Unit tests for the ``metrics_present`` kind (INV-TRAIN-008): the check and a Guard."""

from __future__ import annotations

import logging
import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.metrics_present import MetricsPresent, MetricsPresentParams
from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard
from traingate.runtime.planning import UnevaluableWarning

from .conftest import FINETUNE, feed, maker

make = maker(MetricsPresent, FINETUNE)
LISTED = ["loss", "grad_norm", "lr", "tokens_per_sec"]
ONLY = ["INV-TRAIN-008"]


def test_registered_and_evaluated_at_every_step() -> None:
    assert REGISTRY["metrics_present"] is MetricsPresent
    check = make(observations=LISTED)
    assert check.observes() == frozenset() and check.observes_any() == frozenset()
    assert check.demands() == frozenset(LISTED)


@pytest.mark.parametrize(
    "params",
    [{}, {"observations": []}, {"observations": ["lr", "lr"]}, {"observations": ["components"]}],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MetricsPresentParams.model_validate(params)


def test_every_listed_metric_present_and_finite_passes() -> None:
    step = {"step": 3, "loss": 2.0, "grad_norm": 0.5, "lr": 3e-4, "tokens_per_sec": 900.0}
    (decision,) = feed(make(observations=LISTED), [step])
    assert decision is not None and decision.ok and decision.observed == 0


@pytest.mark.parametrize(
    ("step", "detail"),
    [
        ({"loss": 2.0, "grad_norm": 0.5, "lr": 3e-4}, "missing tokens_per_sec"),
        ({"loss": 2.0, "grad_norm": None, "lr": 3e-4, "tokens_per_sec": 1.0}, "missing grad_norm"),
        ({"loss": 2.0, "grad_norm": 0.5, "lr": math.nan, "tokens_per_sec": 1.0}, "non-finite lr"),
        ({"loss": math.inf, "grad_norm": 0.5, "lr": 1.0}, "missing tokens_per_sec; non-finite"),
    ],
)
def test_a_missing_none_or_non_finite_metric_fires(step: dict[str, float], detail: str) -> None:
    (decision,) = feed(make(observations=LISTED), [step])
    assert decision is not None and not decision.ok and detail in decision.detail
    assert "guard.step" in decision.hint


def test_a_guard_warns_at_each_step_lacking_the_grad_norm(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="traingate"), Guard(only=ONLY) as guard:
        guard.step(0, loss=2.0, grad_norm=1.0)
        guard.step(1, loss=1.9)  # the grad norm was not handed: a violation, not a skip
        guard.step(2, loss=1.8, grad_norm=0.9)
    record = guard.verdict().invariants["INV-TRAIN-008"]
    assert (record.status, record.evaluations, record.violations) == ("warn", 3, 1)
    warned = [r.getMessage() for r in caplog.records if "INV-TRAIN-008" in r.getMessage()]
    assert len(warned) == 1 and "missing grad_norm" in warned[0]
    assert guard.verdict().ok  # GATE-TRAIN-008 is informational


def test_the_start_names_what_a_loop_declares_it_never_supplies() -> None:
    with pytest.warns(UnevaluableWarning) as caught:
        guard = Guard(only=ONLY, regime=FromScratch(256), supplies={"loss"})
    messages = [str(w.message) for w in caught]
    assert messages == [
        "INV-TRAIN-008 (metrics_present) needs grad_norm, which this loop never supplies: "
        "each of its points will violate it"
    ]
    assert [u.invariant_id for u in guard.unevaluable] == ["INV-TRAIN-008"]
