"""Unit tests for the ``no_placeholder`` kind (INV-TRAIN-007): the check and a Guard."""

from __future__ import annotations

import math
import warnings

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.no_placeholder import NoPlaceholder, NoPlaceholderParams
from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.planning import UnevaluableWarning

from .conftest import FINETUNE, feed, maker

make = maker(NoPlaceholder, FINETUNE)
ONLY = ["INV-TRAIN-007"]


def real(i: int) -> dict[str, float]:
    """Step ``i`` of a healthy run: both values change every step."""
    return {"loss": 5.0 - i / 64, "grad_norm": 1.0 + math.sin(i)}


def test_registered_with_the_origins_defaults() -> None:
    assert REGISTRY["no_placeholder"] is NoPlaceholder
    params = NoPlaceholderParams()
    assert (params.observations, params.window, params.fingerprint) == (
        ["loss", "grad_norm"],
        5,
        {},
    )
    assert NoPlaceholder.first_decision(params) == 5


@pytest.mark.parametrize(
    "params",
    [
        {"window": 1},
        {"observations": []},
        {"observations": ["loss", "loss"]},
        {"observations": ["components"]},
        {"fingerprint": {"weights": 1.0}},
        {"windw": 3},
    ],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NoPlaceholderParams.model_validate(params)


def test_a_real_run_passes_once_the_window_is_full() -> None:
    decisions = feed(make(), [real(i) for i in range(8)])
    assert decisions[:4] == [None] * 4
    assert all(d is not None and d.ok and d.observed == 1 for d in decisions[4:])


def test_the_origins_placeholder_fires_on_its_fifth_repeat() -> None:
    tail = [{"loss": 1.0, "grad_norm": 1.0, "train_ppl": math.e}] * 5
    decisions = feed(make(), [real(i) for i in range(3)] + tail)
    assert [d.ok for d in decisions if d is not None] == [True, True, True, False]
    fired = decisions[-1]
    assert fired is not None and fired.observed == 5 and fired.limit == 5
    assert fired.detail == "loss was exactly 1.0 on 5 consecutive steps (fires at 5)"
    assert "ran dry" in fired.hint


def test_a_fingerprint_fires_though_the_listed_observation_varies() -> None:
    check = make(observations=["lr"], window=3, fingerprint={"loss": 1.0, "train_ppl": math.e})
    steps = [{"lr": 0.1 * i, "loss": 1.0, "train_ppl": math.e} for i in range(3)]
    decisions = feed(check, steps)
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None and not decisions[2].ok
    assert "fingerprint" in decisions[2].detail and "train_ppl=2.718281828459045" in (
        decisions[2].detail
    )


def test_a_step_without_its_observations_is_not_evaluated() -> None:
    check = make()
    feed(check, [real(i) for i in range(5)])
    assert feed(check, [{"lr": 0.1}]) == [None]
    assert check.values.streaks.seen == 5


def test_a_guard_aborts_a_constant_loss_and_resumes_mid_streak() -> None:
    first = Guard(only=ONLY, regime=FromScratch(256))
    for step in range(3):
        first.step(step, loss=2.5, grad_norm=1.0 + step)
    state = first.state_dict()
    resumed = Guard(only=ONLY, regime=FromScratch(256))
    resumed.load_state_dict(state)
    resumed.step(3, loss=2.5, grad_norm=7.0)
    with pytest.raises(InvariantViolation) as caught:
        resumed.step(4, loss=2.5, grad_norm=8.0)  # the 5th exact 2.5, 2 of them before resume
    assert caught.value.invariant_id == "INV-TRAIN-007" and caught.value.step == 4
    assert resumed.verdict().invariants["INV-TRAIN-007"].status == "fail"


def test_a_guard_passes_a_real_loss_and_warns_of_a_run_too_short() -> None:
    with Guard(only=ONLY, regime=FromScratch(256)) as guard:
        for i in range(6):
            guard.step(i, **real(i))
    record = guard.verdict().invariants["INV-TRAIN-007"]
    assert (record.status, record.evaluations) == ("pass", 2)
    with pytest.warns(UnevaluableWarning, match=r"INV-TRAIN-007 \(no_placeholder\) needs 4 step"):
        Guard(only=ONLY, regime=FromScratch(256), max_steps=4).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Guard(only=ONLY, regime=FromScratch(256), max_steps=5).close()
