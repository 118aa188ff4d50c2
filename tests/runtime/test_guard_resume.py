"""The Guard's state_dict: a resumed run reaches the verdict an uninterrupted one does."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from traingate.checks import REGISTRY
from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard, InvariantViolation

from .conftest import (
    CLASSES,
    WriteContract,
    as_json,
    divergence,
    finite_step,
    shipped_ids,
)


def _invariants_for_resume() -> list[dict[str, Any]]:
    invs = [divergence(on_violation="warn")]
    if "finite" in REGISTRY:
        invs.append(finite_step(on_violation="warn"))
    return invs


VAL_LOSSES = [2.0, 1.8, 4.0, 3.5]  # epoch 2 is more than 2x epoch 1: a warning
STEP_LOSSES = [2.1, 2.0, float("nan"), 1.9, 1.85, 1.8, 1.7, 1.75]


def _feed(guard: Guard, epochs: range) -> None:
    for epoch in epochs:
        for i in range(2):
            step = 2 * epoch + i
            guard.step(step, loss=torch.tensor(STEP_LOSSES[step]), grad_norm=torch.tensor(0.5))
        guard.validation(epoch, val_loss=VAL_LOSSES[epoch])


def test_state_dict_round_trip_gives_the_same_verdict(write_contract: WriteContract) -> None:
    path = write_contract(_invariants_for_resume())
    with Guard([path], regime=FromScratch(CLASSES)) as whole:
        _feed(whole, range(4))

    with Guard([path], regime=FromScratch(CLASSES)) as first:
        _feed(first, range(2))
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint would store it
    with Guard([path], regime=FromScratch(CLASSES)) as resumed:
        resumed.load_state_dict(state)
        _feed(resumed, range(2, 4))

    assert as_json(resumed.judge()) == as_json(whole.judge())
    assert whole.judge().invariants["INV-TEST-005"].violations == 1
    with (  # without the state, the checks cannot take up where the run left off
        pytest.raises(ValueError, match="expected validation of epoch 0, got epoch 2"),
        Guard([path], regime=FromScratch(CLASSES)) as fresh,
    ):
        _feed(fresh, range(2, 4))


def _feed_shipped(guard: Guard, steps: range) -> None:
    """Steady losses; 3 spikes (INV-TRAIN-003 fires at 5) and 5 exploding gradient norms
    (INV-TRAIN-002 fires at the 5th, step 131) straddling the checkpoint at step 129."""
    for step in steps:
        spike = step in (128, 129, 130)
        grad_norm = (500.0 if 127 <= step <= 131 else 0.7) + 0.001 * math.cos(step)  # real: varies
        loss = 6.0 if spike else 2.0 + 0.01 * math.sin(step)
        guard.step(
            step,
            loss=torch.tensor(loss),
            grad_norm=torch.tensor(grad_norm),
            components={"lm": torch.tensor(loss / 2), "aux": torch.tensor(loss / 2)},
            tokens_per_sec=1000.0 + step,
        )
        if step % 50 == 49:
            guard.validation(step // 50, val_loss=2.0, step=step)


def test_state_dict_round_trip_with_the_shipped_step_checks() -> None:
    regime = FromScratch(CLASSES)  # a cold start at ln 8 ≈ 2.08 passes INV-TRAIN-004
    ids = [*shipped_ids(at="step"), *shipped_ids("non_divergence")]
    with pytest.raises(InvariantViolation) as whole_err, Guard(regime=regime, only=ids) as whole:
        _feed_shipped(whole, range(200))

    with Guard(regime=regime, only=ids) as first:
        _feed_shipped(first, range(129))  # stop inside both streaks
    state = json.loads(json.dumps(first.state_dict()))
    with (
        pytest.raises(InvariantViolation) as resumed_err,
        Guard(regime=regime, only=ids) as resumed,
    ):
        resumed.load_state_dict(state)
        _feed_shipped(resumed, range(129, 200))

    assert (whole_err.value.invariant_id, whole_err.value.step) == ("INV-TRAIN-002", 131)
    assert str(resumed_err.value) == str(whole_err.value)
    verdict = whole.judge()
    evaluated = {i: v.evaluations for i, v in verdict.invariants.items()}
    assert evaluated["INV-TRAIN-003"] == 132 - 100  # judged once its window of 100 was full
    assert evaluated["INV-TRAIN-004"] == 1
    assert evaluated["INV-TRAIN-005"] == 2
    assert as_json(resumed.judge()) == as_json(verdict)


# -- selection and parameters -------------------------------------------------------------------
