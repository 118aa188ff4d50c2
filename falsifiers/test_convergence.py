"""Falsifiers for C-TRAIN-CONVERGENCE (INV-CONV-001 patience, INV-CONV-002 final target).

Each property reads the params from the shipped contract (or varies one of them) and calls
the decision function the Guard runs. The numbers asserted come from the upstream rule
(patience 3, min_epochs 0, min_delta 0, Lightning EarlyStopping's strict improvement), not
from the YAML, so changing a threshold in the contract or a comparison in the code fails
here.
"""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from traingate.checks.convergence import (
    ConvergenceParams,
    check_convergence,
    check_convergence_target,
)
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

PATIENCE = invariant("INV-CONV-001")
TARGET = invariant("INV-CONV-002")

UPSTREAM_PATIENCE, UPSTREAM_MIN_EPOCHS, UPSTREAM_MIN_DELTA = 3, 0, 0.0
CONTEXT = CheckContext(Finetune())

loss = st.floats(min_value=0.0, max_value=1e6)
epochs = st.integers(min_value=0, max_value=10_000)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def decide(
    val_loss: float,
    best: float,
    since_best: int,
    epoch: int,
    params: ConvergenceParams | None = None,
) -> Decision:
    """INV-CONV-001's decision (or one with ``params``) on one validation."""
    return check_convergence(
        val_loss=val_loss,
        best=best,
        since_best=since_best,
        epoch=epoch,
        params=PATIENCE.params if params is None else params,
        context=CONTEXT,
    )


def fold(losses: list[float], params: ConvergenceParams | None = None) -> list[bool]:
    """The ok flags of consecutive validations, threading best and since_best as the Check."""
    best, since, oks = math.inf, 0, []
    for epoch, value in enumerate(losses):
        d = decide(value, best, since, epoch, params)
        best, since = d.metrics["best"], int(d.metrics["since_best"])
        oks.append(d.ok)
    return oks


def test_shipped_patience_is_upstreams() -> None:
    """Patience 3 from the first validation, any strictly lower loss improving; it stops."""
    params = PATIENCE.params
    assert isinstance(params, ConvergenceParams)
    assert (params.patience, params.min_epochs, params.min_delta) == (
        UPSTREAM_PATIENCE,
        UPSTREAM_MIN_EPOCHS,
        UPSTREAM_MIN_DELTA,
    )
    assert (PATIENCE.at, PATIENCE.on_violation) == ("validation", "stop")
    assert (TARGET.at, TARGET.on_violation) == ("final", "warn")
    # min_epochs 0: an exhausted patience stops at any epoch, the first included
    assert not decide(5.0, 1.0, UPSTREAM_PATIENCE - 1, 0).ok
    # min_delta 0: any strictly lower loss is a new best
    assert decide(1.0 - 1e-9, 1.0, UPSTREAM_PATIENCE - 1, 0).ok


@given(best=loss, since=st.integers(min_value=0, max_value=50), epoch=epochs)
def test_stops_exactly_when_patience_runs_out(best: float, since: int, epoch: int) -> None:
    """A validation that does not improve fails exactly when it makes the count reach 3."""
    d = decide(best, best, since, epoch)  # equal to the best: no improvement
    assert d.metrics["since_best"] == since + 1
    assert d.ok == (since + 1 < UPSTREAM_PATIENCE)
    plateau = fold([4.0, 3.0, *[3.0] * 6])
    assert plateau == [True, True, True, True, False, False, False, False]


@given(best=loss, value=loss, since=st.integers(min_value=0, max_value=50), epoch=epochs)
def test_a_new_best_resets_patience(best: float, value: float, since: int, epoch: int) -> None:
    """A strictly lower finite loss is a new best: the count restarts and it passes."""
    assume(value < best)
    d = decide(value, best, since, epoch)
    assert d.ok and d.metrics["improved"] == 1.0
    assert (d.metrics["best"], d.metrics["since_best"]) == (value, 0.0)


@given(
    patience=st.integers(min_value=1, max_value=6),
    min_epochs=st.integers(min_value=0, max_value=20),
    epoch=st.integers(min_value=0, max_value=30),
    since=st.integers(min_value=0, max_value=30),
)
def test_never_stops_before_min_epochs(
    patience: int, min_epochs: int, epoch: int, since: int
) -> None:
    """Exhausted patience fails only from the min_epochs-th validation (epoch min_epochs-1)."""
    params = ConvergenceParams(patience=patience, min_epochs=min_epochs)
    d = decide(2.0, 1.0, since, epoch, params)
    exhausted = since + 1 >= patience
    assert d.ok == (not exhausted or epoch + 1 < min_epochs)
    # at exactly the min_epochs-th validation an exhausted patience stops
    if min_epochs >= 1:
        assert not decide(2.0, 1.0, patience, min_epochs - 1, params).ok


@given(best=st.floats(min_value=1.0, max_value=1e3), delta=st.floats(min_value=0.0, max_value=1.0))
def test_an_improvement_beats_the_best_by_more_than_min_delta(best: float, delta: float) -> None:
    """Exactly min_delta better is no improvement (Lightning); a hair more is."""
    params = ConvergenceParams(patience=1, min_delta=delta)
    bar = best - delta
    at_bar = decide(bar, best, 0, 0, params)
    assert at_bar.metrics["improved"] == 0.0 and not at_bar.ok
    below = math.nextafter(bar, -math.inf)
    assert decide(below, best, 0, 0, params).metrics["improved"] == 1.0
    # the shipped min_delta is 0: equal to the best does not improve, a hair lower does
    assert decide(best, best, 0, 0).metrics["improved"] == 0.0
    assert decide(math.nextafter(best, 0.0), best, 0, 0).metrics["improved"] == 1.0


@given(value=NON_FINITE, best=st.one_of(loss, st.just(math.inf)), since=st.integers(0, 50))
def test_non_finite_val_loss_never_improves(value: float, best: float, since: int) -> None:
    """NaN/inf (even -inf, even before any best) counts as one more validation without one."""
    d = decide(value, best, since, 0)
    assert d.metrics["improved"] == 0.0
    assert d.metrics["since_best"] == since + 1
    assert d.metrics["best"] == best
    assert fold([math.nan] * 3) == [True, True, False]


@given(target=loss, value=st.one_of(loss, NON_FINITE))
def test_final_target_is_inclusive(target: float, value: float) -> None:
    """The final val loss passes at or below the target, exactly the target included."""
    context = CheckContext(Finetune(), {"target_val_loss": target})
    d = check_convergence_target(val_loss=value, params=TARGET.params, context=context)
    assert d.ok == (value <= target)  # NaN compares false: never passes
    exact = check_convergence_target(val_loss=target, params=TARGET.params, context=context)
    assert exact.ok and exact.limit == target


@given(target=loss, vocab=st.integers(min_value=2, max_value=100_000))
def test_final_target_is_the_run_parameter(target: float, vocab: int) -> None:
    """The target is the run's own target_val_loss, in either regime, not a constant."""
    for regime in (Finetune(), FromScratch(vocab)):
        context = CheckContext(regime, {"target_val_loss": target})
        above = check_convergence_target(
            val_loss=math.nextafter(target, math.inf), params=TARGET.params, context=context
        )
        assert not above.ok
        assert above.limit == target and above.formula == "target_val_loss"
