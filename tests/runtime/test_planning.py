"""Up-front honesty: the planner names the shipped invariants a planned run cannot evaluate.

Issue 9, defect 8: a healthy 60-step run exited 3 because INV-TRAIN-003 (``loss_spike``,
100-loss window) was never evaluated, and nothing said so at the start.
"""

from __future__ import annotations

import dataclasses

import pytest

from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.schema import Contract
from traingate.contract.shipped import shipped_contracts
from traingate.runtime.binding import Tracked, bind
from traingate.runtime.planning import Unevaluable, unevaluable

SPIKE = "INV-TRAIN-003 (loss_spike) needs 100 steps before its first decision; the run plans 60"


def shipped(contract_id: str) -> Contract:
    return next(c for c in shipped_contracts() if c.contract == contract_id)


def bound(*contracts: Contract, regime: Finetune | FromScratch | None = None) -> list[Tracked]:
    return bind(contracts, regime or FromScratch(256), {}, None)


def messages(tracked: list[Tracked], **plan: int | None) -> list[str]:
    return [finding.message for finding in unevaluable(tracked, **plan)]


@pytest.fixture
def pretrain() -> list[Tracked]:
    return bound(shipped("C-TRAIN-PRETRAIN"))


def test_a_60_step_plan_flags_the_loss_spike_window(pretrain: list[Tracked]) -> None:
    assert messages(pretrain, max_steps=60, max_validations=2) == [SPIKE]
    (finding,) = unevaluable(pretrain, max_steps=60, max_validations=2)
    assert finding == Unevaluable("INV-TRAIN-003", "loss_spike", "step", 101, 60)
    assert str(finding) == SPIKE


@pytest.mark.parametrize("max_validations", [1, 5, None])
def test_a_200_step_plan_flags_nothing(pretrain: list[Tracked], max_validations: int) -> None:
    assert unevaluable(pretrain, max_steps=200, max_validations=max_validations) == []


def test_the_spike_window_needs_one_step_more_than_it_holds(pretrain: list[Tracked]) -> None:
    assert [f.invariant_id for f in unevaluable(pretrain, max_steps=100)] == ["INV-TRAIN-003"]
    assert unevaluable(pretrain, max_steps=101) == []


def test_a_plan_that_says_nothing_flags_nothing(pretrain: list[Tracked]) -> None:
    assert unevaluable(pretrain) == []
    assert unevaluable(pretrain, max_validations=0, max_steps=None)[0].at == "validation"


def test_no_validation_planned_flags_the_validation_invariant(pretrain: list[Tracked]) -> None:
    assert messages(pretrain, max_steps=200, max_validations=0) == [
        "INV-TRAIN-005 (non_divergence) needs a validation to decide; the run plans none"
    ]


def test_one_validation_decides_non_divergence(pretrain: list[Tracked]) -> None:
    """Epoch 0 is judged by its cap; only the ratio needs a second validation."""
    assert unevaluable(pretrain, max_steps=200, max_validations=1) == []


def test_no_step_planned_flags_every_step_invariant(pretrain: list[Tracked]) -> None:
    found = unevaluable(pretrain, max_steps=0, max_validations=1)
    ids = [f"INV-TRAIN-00{i}" for i in (1, 2, 3, 4, 6, 7, 8)]
    assert [f.invariant_id for f in found] == ids
    assert found[0].message == "INV-TRAIN-001 (finite) needs a step to decide; the run plans none"
    assert found[2].message == SPIKE.replace("plans 60", "plans 0")


def test_only_the_invariants_of_the_regime_are_planned() -> None:
    finetune = bound(shipped("C-TRAIN-PRETRAIN"), regime=Finetune())
    ids = [f.invariant_id for f in unevaluable(finetune, max_steps=0)]
    assert "INV-TRAIN-004" not in ids and "INV-TRAIN-003" in ids


def test_a_step_warmup_counts_like_a_window() -> None:
    balance = bound(shipped("C-LOSS-BALANCE"))
    assert messages(balance, max_steps=60, max_validations=3) == [
        "INV-BAL-002 (loss_balance) needs 100 steps before its first decision; the run plans 60"
    ]
    assert messages(balance, max_steps=101, max_validations=0) == [
        "INV-BAL-001 (loss_balance) needs a validation to decide; the run plans none"
    ]


def test_validations_before_from_epoch_do_not_count() -> None:
    calibration = bound(shipped("C-CALIBRATION"))
    assert messages(calibration, max_validations=10) == [
        "INV-CAL-004 (probability_separation) needs 10 validations before its first "
        "decision; the run plans 10"
    ]
    assert unevaluable(calibration, max_validations=11) == []


def test_validations_before_from_step_are_not_judged() -> None:
    confusion = bound(shipped("C-CONFUSION"))
    found = unevaluable(confusion, max_steps=19_999, max_validations=50)
    assert [f.message for f in found] == [
        f"{inv} (confusion_rate) judges validations from step 20000 on; the run plans 19999 steps"
        for inv in ("INV-CONF-001", "INV-CONF-002")
    ]
    assert found[0] == Unevaluable(
        "INV-CONF-001", "confusion_rate", "validation", 20_000, 19_999, True
    )
    assert unevaluable(confusion, max_steps=20_000, max_validations=50) == []
    assert unevaluable(confusion, max_validations=50) == []


def test_a_final_invariant_is_evaluated_once_whatever_the_plan() -> None:
    export = bound(shipped("C-EXPORT-ONNX"))
    assert unevaluable(export, max_steps=0, max_validations=0) == []


def test_a_final_invariant_needing_more_than_one_evaluation_is_flagged() -> None:
    contract = shipped("C-LOSS-BALANCE")
    per_step = next(inv for inv in contract.invariants if inv.id == "INV-BAL-002")
    at_final = contract.model_copy(
        update={"invariants": [per_step.model_copy(update={"at": "final"})]}
    )
    assert messages(bound(at_final), max_steps=1000, max_validations=10) == [
        "INV-BAL-002 (loss_balance) needs 101 evaluations for its first decision; "
        "the final point is evaluated once"
    ]


@pytest.mark.parametrize("plan", [{"max_steps": -1}, {"max_validations": -2}])
def test_a_negative_plan_is_an_error(pretrain: list[Tracked], plan: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be at least 0"):
        unevaluable(pretrain, **plan)


def test_a_finding_is_frozen() -> None:
    finding = Unevaluable("INV-TRAIN-003", "loss_spike", "step", 101, 60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.planned = 200  # type: ignore[misc]
