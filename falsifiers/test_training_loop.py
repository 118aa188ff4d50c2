"""Falsifiers for C-TRAIN-PRETRAIN INV-TRAIN-005 (non-divergence).

Each property reads the thresholds from the shipped contract and calls the decision
function the Guard runs, so changing the YAML formula or the code's comparison fails here.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext
from traingate.checks.non_divergence import check_non_divergence
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

PARAMS = invariant("INV-TRAIN-005").params
vocab = st.integers(min_value=2, max_value=10_000_000)
finite_loss = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


def cap(regime: Finetune | FromScratch) -> float:
    return check_non_divergence(
        epoch=0, history=[0.0], params=PARAMS, context=CheckContext(regime)
    ).limit  # type: ignore[return-value]


@given(vocab)
def test_from_scratch_cap_is_two_ln_vocab(v: int) -> None:
    assert math.isclose(cap(FromScratch(v)), 2.0 * math.log(v), rel_tol=1e-12)
    assert int(cap(FromScratch(50257)) * 100) == 2164  # 21.6498…, quoted as 21.64 in seed 003


@given(vocab, st.floats(min_value=-0.05, max_value=0.05))
def test_near_random_cold_start_passes_from_scratch(v: int, jitter: float) -> None:
    cold_start = math.log(v) * (1.0 + jitter)
    assert check_non_divergence(
        epoch=0, history=[cold_start], params=PARAMS, context=CheckContext(FromScratch(v))
    ).ok


@given(vocab, st.floats(min_value=1e-9, max_value=1e6))
def test_from_scratch_aborts_above_cap(v: int, excess: float) -> None:
    limit = 2.0 * math.log(v)
    above = math.nextafter(limit, math.inf) + excess
    assert not check_non_divergence(
        epoch=0, history=[above], params=PARAMS, context=CheckContext(FromScratch(v))
    ).ok
    assert check_non_divergence(
        epoch=0, history=[limit], params=PARAMS, context=CheckContext(FromScratch(v))
    ).ok


@given(vocab, finite_loss)
def test_finetune_cap_is_ten_whatever_vocab(v: int, loss: float) -> None:
    decision = check_non_divergence(
        epoch=0, history=[loss], params=PARAMS, context=CheckContext(Finetune())
    )
    assert decision.limit == 10.0
    assert decision.ok == (loss <= 10.0)
    del v  # the finetune cap must not depend on the vocabulary


@given(st.integers(min_value=2, max_value=10_000_000))
def test_cold_start_run_as_finetune_aborts(v: int) -> None:
    """Seed 003 reversed: random weights (loss ≈ ln V > 10) run as finetune must abort."""
    cold = math.log(v)
    decision = check_non_divergence(
        epoch=0, history=[cold], params=PARAMS, context=CheckContext(Finetune())
    )
    assert decision.ok == (cold <= 10.0)
    if v == 50257:
        assert not decision.ok


@given(
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=1e-12, max_value=10.0),
    st.sampled_from([Finetune(), FromScratch(50257)]),
)
def test_exactly_ratio_limit_passes_and_above_aborts(prev: float, excess: float, regime) -> None:
    exact = 2.0 * prev
    assert check_non_divergence(
        epoch=1, history=[prev, exact], params=PARAMS, context=CheckContext(regime)
    ).ok
    assert not check_non_divergence(
        epoch=1,
        history=[prev, math.nextafter(exact, math.inf) + excess * prev],
        params=PARAMS,
        context=CheckContext(regime),
    ).ok


@given(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=0, max_value=5),
    st.sampled_from([Finetune(), FromScratch(2), FromScratch(50257)]),
)
def test_non_finite_always_aborts(bad: float, epoch: int, regime) -> None:
    history = [1.0] * epoch + [bad]
    decision = check_non_divergence(
        epoch=epoch, history=history, params=PARAMS, context=CheckContext(regime)
    )
    assert not decision.ok


@given(st.integers(min_value=0, max_value=5))
def test_epoch_outside_history_is_an_error(n: int) -> None:
    """Deciding an epoch that has no recorded loss is a caller error, never a verdict."""
    history = [1.0] * n
    with pytest.raises(ValueError, match="outside a history"):
        check_non_divergence(
            epoch=n, history=history, params=PARAMS, context=CheckContext(Finetune())
        )
    with pytest.raises(ValueError, match="outside a history"):
        check_non_divergence(
            epoch=-1, history=[1.0, *history], params=PARAMS, context=CheckContext(Finetune())
        )
