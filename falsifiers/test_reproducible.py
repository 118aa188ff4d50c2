"""Falsifiers for C-TRAIN-REPRODUCIBLE (INV-REPRO-001, kind ``reproducible``).

Each property reads the params from the shipped contract and calls the decision the Guard
runs at the final point. The numbers asserted come from the upstream rule (loss and grad
norm within 1e-6 for the first 20 steps), not from the YAML, so moving the tolerance or the
step count in the contract, or a comparison in the code, fails here.
"""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext, Decision
from traingate.checks.reproducible import check_reproducible
from traingate.contract.regime import Finetune
from traingate.contract.shipped import invariant

REPRO = invariant("INV-REPRO-001")
STEPS = 20  # the upstream gate compares the first 20 steps
TOLERANCE = 1e-6  # absolute; exactly 1e-6 passes
OBSERVATIONS = ("loss", "grad_norm")

Runs = dict[str, list[float]]
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
step_values = st.lists(finite, min_size=STEPS, max_size=STEPS + 10)
early_step = st.integers(min_value=0, max_value=STEPS - 1)
observation = st.sampled_from(OBSERVATIONS)


def decide(run: Runs, reference: Runs) -> Decision:
    """INV-REPRO-001's decision on two runs' step values."""
    return check_reproducible(
        run=run, reference=reference, params=REPRO.params, context=CheckContext(Finetune())
    )


def twin(values: list[float]) -> Runs:
    """A run whose loss and grad_norm both take ``values``."""
    return {name: list(values) for name in OBSERVATIONS}


def with_value(runs: Runs, name: str, step: int, value: float) -> Runs:
    """``runs`` with ``name``'s value at ``step`` replaced."""
    changed = {k: list(v) for k, v in runs.items()}
    changed[name][step] = value
    return changed


def test_the_contract_compares_loss_and_grad_norm_at_the_final_point() -> None:
    assert (REPRO.check, REPRO.at) == ("reproducible", "final")
    assert tuple(REPRO.params.observations) == OBSERVATIONS


@given(step_values)
def test_identical_runs_reproduce(values: list[float]) -> None:
    decision = decide(twin(values), twin(values))
    assert decision.ok and decision.observed == 0.0


@given(st.floats(min_value=0.0, max_value=2 * TOLERANCE), early_step, observation)
@example(TOLERANCE, 0, "loss")  # exactly the tolerance passes
@example(math.nextafter(TOLERANCE, math.inf), 0, "loss")  # the next float above fires
@example(0.95 * TOLERANCE, STEPS - 1, "grad_norm")
@example(1.05 * TOLERANCE, STEPS - 1, "grad_norm")
def test_tolerance_is_one_in_a_million_inclusive(diff: float, step: int, name: str) -> None:
    base = twin([0.0] * STEPS)
    decision = decide(with_value(base, name, step, diff), base)
    assert decision.ok == (diff <= TOLERANCE)


@given(step_values, early_step, observation, st.floats(min_value=1.5 * TOLERANCE, max_value=1e3))
def test_any_difference_beyond_tolerance_fires(
    values: list[float], step: int, name: str, shift: float
) -> None:
    reference = twin(values)
    moved = values[step] + shift
    run = with_value(reference, name, step, moved)
    diff = abs(moved - values[step])
    decision = decide(run, reference)
    assert decision.ok == (diff <= TOLERANCE)
    if not decision.ok:
        assert decision.observed == diff and f"step {step}: {name}" in decision.detail


@given(st.lists(finite, min_size=STEPS + 1, max_size=STEPS + 10), st.data())
def test_only_the_first_twenty_steps_count(values: list[float], data: st.DataObject) -> None:
    step = data.draw(st.integers(min_value=STEPS, max_value=len(values) - 1))
    reference = twin(values)
    late = with_value(reference, "loss", step, values[step] + 1.0)
    assert decide(late, reference).ok  # step 20 on is not compared
    last_compared = with_value(reference, "grad_norm", STEPS - 1, values[STEPS - 1] + 1.0)
    assert not decide(last_compared, reference).ok  # step 19 is


@given(st.integers(min_value=0, max_value=STEPS - 1), st.booleans(), observation)
def test_fewer_than_twenty_steps_is_a_violation(have: int, short_run: bool, name: str) -> None:
    full, short = twin([1.0] * STEPS), twin([1.0] * STEPS)
    short[name] = short[name][:have]
    run, reference = (short, full) if short_run else (full, short)
    decision = decide(run, reference)
    assert not decision.ok and decision.observed == have and decision.limit == STEPS
    assert decide(full, twin([1.0] * STEPS)).ok  # exactly twenty steps are enough


@given(observation, st.booleans())
def test_a_missing_observation_is_a_violation(name: str, from_run: bool) -> None:
    full = twin([2.0] * STEPS)
    lacking = {k: v for k, v in full.items() if k != name}
    run, reference = (lacking, full) if from_run else (full, lacking)
    decision = decide(run, reference)
    assert not decision.ok and name in decision.detail


@given(st.sampled_from([math.nan, math.inf, -math.inf]), early_step)
def test_nan_never_reproduces(bad: float, step: int) -> None:
    """A NaN or infinity is never within tolerance, of a number or of itself (NaN vs NaN,
    inf vs inf: the difference is NaN), so a run that produced one is not reproduced."""
    base = twin([0.5] * STEPS)
    run = with_value(base, "loss", step, bad)
    assert not decide(run, run).ok
    assert not decide(run, base).ok and not decide(base, run).ok
