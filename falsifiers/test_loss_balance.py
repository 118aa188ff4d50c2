"""Falsifiers for C-LOSS-BALANCE (INV-BAL-001 at validation, INV-BAL-002 per step).

Seed 004: countdown was 90.6 % of the raw validation loss at epoch 1 and 91.2 % at epoch 100
while span F1 stayed 0, and uncertainty weighting (countdown weight 4.3 %) hid it. Each
property reads the params from the shipped contract and calls the decision the Guard runs.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext, Decision
from traingate.checks.loss_balance import check_loss_balance
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

AT_VALIDATION = invariant("INV-BAL-001")
PER_STEP = invariant("INV-BAL-002")

MAX_SHARE = 0.9  # "no loss component may be 90 % of the total"
STEP_WARMUP, STEP_PATIENCE = 100, 100

# Seed 004, validation loss components by epoch (type, pointer, span, countdown).
SEED_004 = {
    1: {"type": 1.08, "ptr": 0.025, "span": 0.57, "countdown": 16.12},
    10: {"type": 0.69, "ptr": 0.011, "span": 0.25, "countdown": 15.25},
    20: {"type": 0.70, "ptr": 0.010, "span": 0.27, "countdown": 12.88},
    50: {"type": 0.74, "ptr": 0.011, "span": 0.29, "countdown": 11.00},
    100: {"type": 0.68, "ptr": 0.009, "span": 0.28, "countdown": 10.08},
}
# Seed 004's final uncertainty task weights.
KENDALL = {"type": 0.137, "ptr": 0.561, "span": 0.260, "countdown": 0.043}
REGIMES = st.sampled_from([Finetune(), FromScratch(50257)])


def first_validation(
    components: dict[str, float], weights: dict[str, float] | None = None
) -> Decision | None:
    """INV-BAL-001's decision on the first validation of a run."""
    return check_loss_balance(
        components=components,
        weights=weights,
        evaluation=0,
        streak=0,
        params=AT_VALIDATION.params,
        context=CheckContext(Finetune()),
    )


def per_step(
    components: dict[str, float],
    weights: dict[str, float] | None = None,
    evaluation: int = STEP_WARMUP,
    streak: int = 0,
) -> Decision | None:
    """INV-BAL-002's decision on evaluation ``evaluation`` after ``streak`` dominated ones."""
    return check_loss_balance(
        components=components,
        weights=weights,
        evaluation=evaluation,
        streak=streak,
        params=PER_STEP.params,
        context=CheckContext(Finetune()),
    )


def test_seed_004_epoch_1_fires_on_countdown() -> None:
    assert AT_VALIDATION.params.source == "val_components"
    decision = first_validation(SEED_004[1])
    assert decision is not None and not decision.ok
    assert math.isclose(decision.observed, 16.12 / 17.795, rel_tol=1e-12)
    assert round(decision.observed, 3) == 0.906
    assert decision.detail.startswith("countdown ")


@given(st.sampled_from(sorted(SEED_004)))
def test_uncertainty_weights_do_not_hide_seed_004s_dominance(epoch: int) -> None:
    decision = first_validation(SEED_004[epoch], KENDALL)
    assert decision is not None and not decision.ok
    assert decision.metrics["weighted_share/countdown"] < MAX_SHARE


@given(
    st.integers(min_value=-30, max_value=30),
    st.integers(min_value=0, max_value=16),
    REGIMES,
)
def test_exactly_max_share_passes_and_above_fires(
    exponent: int, sixteenths: int, regime: Finetune | FromScratch
) -> None:
    scale = 2.0**exponent  # powers of two keep 9 : 1 exact, so the share is exactly 0.9
    rest = {"b": scale * sixteenths / 16, "c": scale * (16 - sixteenths) / 16}
    at = check_loss_balance(
        components={"a": 9 * scale, **rest},
        weights=None,
        evaluation=0,
        streak=0,
        params=AT_VALIDATION.params,
        context=CheckContext(regime),
    )
    assert at is not None and at.observed == MAX_SHARE and at.ok
    above = check_loss_balance(
        components={"a": 9 * scale * (1 + 1e-9), **rest},
        weights=None,
        evaluation=0,
        streak=0,
        params=AT_VALIDATION.params,
        context=CheckContext(regime),
    )
    assert above is not None and above.observed > MAX_SHARE and not above.ok


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=2, max_size=6))
def test_top_raw_share_decides(values: list[float]) -> None:
    components = {f"c{i}": v for i, v in enumerate(values)}
    total = math.fsum(values)
    top = max(values) / total if total > 0 else 0.0
    decision = first_validation(components)
    assert decision is not None
    assert decision.ok == (top <= MAX_SHARE)


@given(st.sampled_from([math.nan, math.inf]), st.floats(min_value=0.0, max_value=1e6))
def test_non_finite_component_fires(bad: float, other: float) -> None:
    decision = first_validation({"a": bad, "b": other, "c": other})
    assert decision is not None and not decision.ok


def test_validation_gate_fires_on_the_first_dominated_epoch() -> None:
    """Seed 004 ran 99 more epochs after epoch 1 already showed the failure."""
    assert (AT_VALIDATION.at, AT_VALIDATION.on_violation) == ("validation", "abort")
    decision = check_loss_balance(
        components=SEED_004[1],
        weights=None,
        evaluation=0,
        streak=0,
        params=AT_VALIDATION.params,
        context=CheckContext(Finetune()),
    )
    assert decision is not None and not decision.ok


@given(st.integers(min_value=0, max_value=3 * STEP_WARMUP))
def test_per_step_check_waits_out_its_warmup(evaluation: int) -> None:
    assert PER_STEP.params.source == "components"
    decision = per_step(SEED_004[1], evaluation=evaluation)
    assert (decision is None) == (evaluation < STEP_WARMUP)
    last_ignored, first_judged = (
        per_step(SEED_004[1], evaluation=n) for n in (STEP_WARMUP - 1, STEP_WARMUP)
    )
    assert last_ignored is None and first_judged is not None


@given(st.integers(min_value=0, max_value=3 * STEP_PATIENCE))
def test_per_step_check_fires_at_exactly_patience(streak: int) -> None:
    dominated = per_step(SEED_004[1], streak=streak)
    assert dominated is not None and dominated.ok == (streak + 1 < STEP_PATIENCE)
    tolerated, fires = (
        per_step(SEED_004[1], streak=n) for n in (STEP_PATIENCE - 2, STEP_PATIENCE - 1)
    )
    assert tolerated is not None and tolerated.ok
    assert fires is not None and not fires.ok
    balanced = per_step({"a": 1.0, "b": 1.0}, streak=streak)
    assert balanced is not None and balanced.ok and balanced.metrics["streak"] == 0


@given(st.floats(min_value=1e-9, max_value=0.09))
def test_per_step_cap_is_exactly_max_share(excess: float) -> None:
    """INV-BAL-002 gates on the same 0.9 share as INV-BAL-001: exactly 0.9 holds, above fires."""
    at_cap = {"big": 0.9, "rest": 0.1}
    over = {"big": 0.9 + excess, "rest": 0.1 - excess}
    last = STEP_PATIENCE - 1
    exact = per_step(at_cap, streak=last)
    above = per_step(over, streak=last)
    assert exact is not None and exact.ok
    assert above is not None and not above.ok
