"""Unit tests for the ``non_divergence`` kind (INV-TRAIN-005), with seed 003's numbers.

The shipped contract's properties are in falsifiers/test_training_loop.py; resume and reset
are in test_state.py with every other kind.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY, LimitDrawing
from traingate.checks.decision import CheckContext, Decision
from traingate.checks.non_divergence import (
    NonDivergence,
    NonDivergenceParams,
    check_non_divergence,
)
from traingate.contract.regime import Finetune, FromScratch

from .conftest import FINETUNE

VOCAB = 50257
SCRATCH = CheckContext(FromScratch(VOCAB))
# seed 003's cap: 10 for a finetune, 2·ln V from scratch (ln 50257 ≈ 10.82)
PARAMS = NonDivergenceParams.model_validate(
    {"epoch_zero_cap": {"finetune": 10.0, "from_scratch": "2 * ln(vocab_size)"}}
)


def decide(history: list[float], context: CheckContext = SCRATCH) -> Decision:
    return check_non_divergence(
        history=history, epoch=len(history) - 1, params=PARAMS, context=context
    )


def make(context: CheckContext = SCRATCH) -> NonDivergence:
    return NonDivergence(PARAMS, context)


def test_registered_with_a_ratio_of_two_drawn_on_the_val_loss() -> None:
    assert REGISTRY["non_divergence"] is NonDivergence
    assert PARAMS.ratio_limit.evaluate({}) == 2.0
    assert NonDivergence.drawing == LimitDrawing("val_loss", constant=False)
    assert NonDivergence.limit_label(0) == "epoch-0 cap"
    assert NonDivergence.limit_label(3) == "ratio limit (ratio × previous epoch)"
    assert make().observes() == {"epoch", "val_loss"} and not make().observes_any()


def test_seed_003_cold_start_passes_from_scratch_and_aborts_as_finetune() -> None:
    cold = 10.93  # ≈ ln V: a from-scratch model's first validation
    scratch = decide([cold])
    assert scratch.ok and scratch.limit == pytest.approx(2 * math.log(VOCAB))
    assert scratch.formula == "2 * ln(vocab_size)" and "(from_scratch)" in scratch.detail
    finetune = decide([cold], FINETUNE)
    assert not finetune.ok and finetune.limit == 10.0 and finetune.comparison == "<="
    assert "random weights run as finetune" in finetune.hint


def test_the_epoch_zero_cap_itself_passes() -> None:
    assert decide([10.0], FINETUNE).ok
    assert not decide([math.nextafter(10.0, math.inf)], FINETUNE).ok


def test_later_epochs_are_bounded_by_ratio_times_the_previous() -> None:
    exact = decide([5.0, 3.0, 6.0])
    assert exact.ok and exact.limit == 6.0 and exact.comparison == "<="
    assert exact.formula == "(2) * val_loss[1]" and exact.evaluated == "2 * 3 = 6"
    above = decide([5.0, 3.0, math.nextafter(6.0, math.inf)])
    assert not above.ok and "diverging" in above.hint


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("epoch", [0, 2])
def test_non_finite_val_loss_fails(bad: float, epoch: int) -> None:
    decision = decide([1.0] * epoch + [bad])
    assert not decision.ok and decision.comparison == "finite"
    assert f"epoch-{epoch} val loss is" in decision.detail


def test_ratio_limit_may_be_a_formula_of_run_parameters() -> None:
    params = NonDivergenceParams.model_validate({"epoch_zero_cap": 10, "ratio_limit": "1 + slack"})
    context = CheckContext(Finetune(), {"slack": 0.5})
    decision = check_non_divergence(history=[2.0, 3.0], epoch=1, params=params, context=context)
    assert decision.ok and decision.limit == 3.0
    assert decision.evaluated == "1.5 * 2 = 3"


def test_an_epoch_outside_the_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside a history"):
        check_non_divergence(history=[1.0], epoch=1, params=PARAMS, context=SCRATCH)


def test_the_check_decides_the_latest_epoch() -> None:
    check = make(FINETUNE)
    assert check.verdict() is None
    decisions = []
    for epoch, loss in enumerate([4.0, 3.0, 7.0]):
        check.update({"epoch": epoch, "val_loss": loss})
        decisions.append(check.verdict())
    assert [d.ok for d in decisions if d] == [True, True, False]
    assert check.state_dict() == {"history": [4.0, 3.0, 7.0]}


def test_validations_must_come_in_epoch_order() -> None:
    check = make()
    check.update({"epoch": 0, "val_loss": 5.0})
    with pytest.raises(ValueError, match="expected validation of epoch 1, got epoch 2"):
        check.update({"epoch": 2, "val_loss": 5.0})


@pytest.mark.parametrize("params", [{}, {"epoch_zero_cap": "ln("}, {"epoch_zero_cap": 1, "x": 2}])
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NonDivergenceParams.model_validate(params)
