"""Unit tests for the ``loss_balance`` kind (INV-BAL), with seed 004's numbers."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.decision import Decision
from traingate.checks.loss_balance import (
    LossBalance,
    LossBalanceParams,
    check_loss_balance,
    component_shares,
)

from .conftest import FINETUNE, feed, maker

# Seed 004 validation loss components by epoch (type, pointer, span, countdown).
SEED_004 = {
    1: {"type": 1.08, "ptr": 0.025, "span": 0.57, "countdown": 16.12},
    10: {"type": 0.69, "ptr": 0.011, "span": 0.25, "countdown": 15.25},
    100: {"type": 0.68, "ptr": 0.009, "span": 0.28, "countdown": 10.08},
}
# Seed 004's final uncertainty task weights: countdown weighted down to 4.3 %.
WEIGHTS = {"type": 0.137, "ptr": 0.561, "span": 0.260, "countdown": 0.043}
BALANCED = {"type": 0.7, "ptr": 0.4, "span": 0.3, "countdown": 0.5}
DEFAULTS = LossBalanceParams()
make = maker(LossBalance, FINETUNE)


def first(
    losses: dict[str, float],
    weights: dict[str, float] | None = None,
    params: LossBalanceParams = DEFAULTS,
) -> Decision | None:
    """The pure decision on a run's first evaluation of its loss components ``losses``."""
    return check_loss_balance(
        components=losses, weights=weights, evaluation=0, streak=0, params=params, context=FINETUNE
    )


def test_registered_with_defaults() -> None:
    assert REGISTRY["loss_balance"] is LossBalance
    params = LossBalanceParams()
    assert params.max_share.evaluate({}) == 0.9
    assert (params.warmup, params.patience, params.source) == (0, 1, "components")


def test_seed_004_epoch_1_fires_on_countdown() -> None:
    check = make(source="val_components")
    check.update({"epoch": 1, "val_components": SEED_004[1]})
    decision = check.verdict()
    assert decision is not None and not decision.ok
    assert decision.observed == pytest.approx(16.12 / 17.795)
    assert decision.observed == pytest.approx(0.906, abs=5e-4)
    assert decision.detail.startswith("countdown is 90.6%")


@pytest.mark.parametrize("epoch", sorted(SEED_004))
def test_seed_004_fires_every_epoch_despite_task_weights(epoch: int) -> None:
    decision = first(SEED_004[epoch], WEIGHTS)
    assert decision is not None and not decision.ok
    assert decision.metrics["weighted_share/countdown"] < decision.metrics["share/countdown"]


def test_balanced_components_pass() -> None:
    decision = first(BALANCED)
    assert decision is not None and decision.ok and decision.metrics["streak"] == 0
    assert sum(v for k, v in decision.metrics.items() if k.startswith("share/")) == (
        pytest.approx(1.0)
    )


def test_exactly_max_share_passes_and_above_fires() -> None:
    at = first({"a": 9.0, "b": 1.0})
    above = first({"a": 9.000001, "b": 1.0})
    assert at is not None and at.ok and at.observed == 0.9
    assert above is not None and not above.ok


def test_warmup_evaluations_are_not_evaluated() -> None:
    decisions = feed(make(warmup=2), [{"components": SEED_004[1]}] * 3)
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None and not decisions[2].ok


def test_fires_after_patience_consecutive_dominated_evaluations() -> None:
    dominated, balanced = {"components": SEED_004[1]}, {"components": BALANCED}
    stream = [dominated, dominated, balanced, dominated, dominated, dominated]
    decisions = feed(make(patience=3), stream)
    assert [d.metrics["streak"] for d in decisions if d] == [1, 2, 0, 1, 2, 3]
    assert [d.ok for d in decisions if d] == [True, True, True, True, True, False]


def test_weighted_shares_are_reported() -> None:
    weights = {"a": 3.0, "b": 1.0}
    decision = first({"a": 1.0, "b": 3.0}, weights)
    assert decision is not None
    assert decision.metrics["weighted_share/a"] == 0.5
    assert decision.metrics["share/b"] == 0.75


def test_weights_must_name_the_components() -> None:
    with pytest.raises(ValueError, match="weights"):
        first({"a": 1.0, "b": 1.0}, {"a": 1.0})


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_component_fires_at_once(bad: float) -> None:
    decision = first({"a": 1.0, "b": bad}, params=LossBalanceParams(patience=5))
    assert decision is not None and not decision.ok and "b is not finite" in decision.detail


def test_shares_use_magnitudes_and_handle_an_all_zero_loss() -> None:
    assert component_shares({"a": -3.0, "b": 1.0}) == {"a": 0.75, "b": 0.25}
    assert component_shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}
    decision = first({"a": 0.0, "b": 0.0})
    assert decision is not None and decision.ok


def test_no_components_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        first({})


def test_observation_without_its_source_is_not_evaluated() -> None:
    check = make(source="val_components", warmup=1)
    assert feed(check, [{"components": SEED_004[1]}]) == [None]
    assert check.state_dict()["evaluations"] == 0
    decisions = feed(check, [{"val_components": SEED_004[1]}, {"val_components": SEED_004[1]}])
    assert decisions[0] is None and decisions[1] is not None and not decisions[1].ok


@pytest.mark.parametrize(
    "params", [{"max_share": "0.9 +"}, {"warmup": -1}, {"patience": 0}, {"source": "loss"}]
)
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LossBalanceParams.model_validate(params)
