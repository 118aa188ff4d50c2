"""Falsifiers for C-TRAIN-PRETRAIN's step-level invariants (INV-TRAIN-001…004, 006).

Each property reads the params from the shipped contract and calls the decision function
the Guard runs. The numbers they assert come from the seeds, not from the YAML, so changing
a threshold in the contract or a comparison in the code fails here.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext, Decision
from traingate.checks.expression import check_expression
from traingate.checks.finite import check_finite
from traingate.checks.gradient_norm import check_gradient_norm
from traingate.checks.initial_loss import check_initial_loss
from traingate.checks.loss_spike import check_loss_spike
from traingate.contract.formula import Formula
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

FINITE = invariant("INV-TRAIN-001")
GRAD = invariant("INV-TRAIN-002")
SPIKE = invariant("INV-TRAIN-003")
INITIAL = invariant("INV-TRAIN-004")
THROUGHPUT = invariant("INV-TRAIN-006")

Regime = Finetune | FromScratch
FINETUNE = Finetune()
REGIMES = st.sampled_from([Finetune(), FromScratch(2), FromScratch(50257)])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
vocab = st.integers(min_value=2, max_value=10_000_000)

# Seed 004: healthy gradients stay above 0.001 and below 100.
MIN_NORM, MAX_NORM = 1e-3, 100.0
GRAD_PATIENCE = 5  # fires on the 5th consecutive out-of-range step
# llm-foundry KillLossSpike: ×2 the mean of the last 100 losses, more than 4 in a row.
SPIKE_FACTOR, SPIKE_WINDOW, SPIKE_PATIENCE = 2.0, 100, 4
INITIAL_TOLERANCE = 0.5  # |L0 − ln V| ≤ 0.5·ln V


def grad(norm: float, streak: int, regime: Regime = FINETUNE) -> Decision:
    """INV-TRAIN-002's decision after ``streak`` out-of-range steps."""
    return check_gradient_norm(
        norm=norm, streak=streak, params=GRAD.params, context=CheckContext(regime)
    )


def spike(
    loss: float,
    window_sum: float,
    count: int = SPIKE_WINDOW,
    before: int = 0,
    regime: Regime = FINETUNE,
) -> Decision | None:
    """INV-TRAIN-003's decision on ``loss`` after ``count`` losses summing to ``window_sum``
    and ``before`` spikes in a row."""
    return check_loss_spike(
        loss=loss,
        window_sum=window_sum,
        window_count=count,
        consecutive=before,
        params=SPIKE.params,
        context=CheckContext(regime),
    )


def initial(loss: float, regime: Regime = FINETUNE) -> Decision:
    """INV-TRAIN-004's decision on the first step's loss."""
    return check_initial_loss(loss=loss, params=INITIAL.params, context=CheckContext(regime))


def throughput(metric_values: dict[str, float], regime: Regime = FINETUNE) -> Decision | None:
    """INV-TRAIN-006's decision on a step's metrics."""
    return check_expression(
        metric_values=metric_values, params=THROUGHPUT.params, context=CheckContext(regime)
    )


out_of_range_norm = st.one_of(
    st.floats(min_value=0.0, max_value=MIN_NORM, exclude_max=True),
    st.floats(min_value=MAX_NORM, exclude_min=True),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
in_range_norm = st.floats(min_value=MIN_NORM, max_value=MAX_NORM)


# -- INV-TRAIN-001 finite ------------------------------------------------------------------


@given(ANY_FLOAT, ANY_FLOAT)
def test_finite_requires_finite_loss_and_grad_norm(loss: float, grad_norm: float) -> None:
    decision = check_finite(observed={"loss": loss, "grad_norm": grad_norm}, params=FINITE.params)
    assert decision is not None
    assert decision.ok == (math.isfinite(loss) and math.isfinite(grad_norm))


@given(ANY_FLOAT)
def test_finite_checks_loss_when_grad_norm_is_absent(loss: float) -> None:
    decision = check_finite(observed={"loss": loss}, params=FINITE.params)
    assert decision is not None and decision.ok == math.isfinite(loss)


def test_non_finite_aborts_at_the_step_point() -> None:
    """The Guard runs step checks before optimizer.step(): a NaN must abort there."""
    assert (FINITE.at, FINITE.on_violation) == ("step", "abort")
    decision = check_finite(observed={"loss": 1.0, "grad_norm": math.nan}, params=FINITE.params)
    assert decision is not None and not decision.ok


# -- INV-TRAIN-002 gradient_norm -----------------------------------------------------------


def fold_norms(norms: list[float], regime: Regime) -> list[bool]:
    """The ok flags of consecutive steps, threading the streak the way the Check does."""
    streak, oks = 0, []
    for norm in norms:
        decision = grad(norm, streak, regime=regime)
        streak = int(decision.metrics["streak"])
        oks.append(decision.ok)
    return oks


@given(st.floats(min_value=0.0, allow_infinity=False), REGIMES)
def test_gradient_norm_range_is_seed_004s(norm: float, regime: Regime) -> None:
    decision = grad(norm, GRAD_PATIENCE - 1, regime=regime)
    assert decision.ok == (MIN_NORM <= norm <= MAX_NORM)


@given(REGIMES)
def test_gradient_norm_bounds_are_inclusive(regime: Regime) -> None:
    last = GRAD_PATIENCE - 1
    assert grad(MIN_NORM, last, regime=regime).ok
    assert grad(MAX_NORM, last, regime=regime).ok
    below = grad(math.nextafter(MIN_NORM, 0.0), last, regime=regime)
    above = grad(math.nextafter(MAX_NORM, math.inf), last, regime=regime)
    assert not below.ok and below.metrics["vanishing"] == 1.0
    assert not above.ok and above.metrics["exploding"] == 1.0


@given(st.lists(out_of_range_norm, min_size=1, max_size=3 * GRAD_PATIENCE), REGIMES)
def test_gradient_norm_fires_at_exactly_patience(norms: list[float], regime: Regime) -> None:
    oks = fold_norms(norms, regime)
    assert oks == [i + 1 < GRAD_PATIENCE for i in range(len(norms))]


@given(
    st.lists(out_of_range_norm, min_size=GRAD_PATIENCE - 1, max_size=GRAD_PATIENCE - 1),
    in_range_norm,
)
def test_an_in_range_step_resets_the_gradient_streak(bad: list[float], good: float) -> None:
    assert all(fold_norms([*bad, good, *bad], Finetune()))


# -- INV-TRAIN-003 loss_spike --------------------------------------------------------------

positive_loss = st.floats(min_value=1e-6, max_value=1e6)


@given(st.lists(positive_loss, min_size=SPIKE_WINDOW, max_size=SPIKE_WINDOW), positive_loss)
def test_spike_threshold_is_twice_the_window_mean(window: list[float], loss: float) -> None:
    total = sum(window)
    decision = spike(loss, total)
    assert decision is not None
    limit = SPIKE_FACTOR * (total / SPIKE_WINDOW)
    assert decision.limit == limit
    assert decision.metrics["spike"] == float(loss >= limit)
    at = spike(limit, total)
    below = spike(math.nextafter(limit, 0.0), total)
    assert at is not None and at.metrics["spike"] == 1.0
    assert below is not None and below.metrics["spike"] == 0.0


@given(st.integers(min_value=0, max_value=SPIKE_WINDOW - 1), REGIMES)
def test_spikes_are_not_judged_before_a_full_window(count: int, regime: Regime) -> None:
    assert spike(1e9, float(count), count=count, regime=regime) is None
    full = spike(1e9, float(SPIKE_WINDOW), regime=regime)
    assert full is not None
    # the boundary itself, whatever examples Hypothesis draws: one short of the window
    last = SPIKE_WINDOW - 1
    assert spike(1e9, float(last), count=last, regime=regime) is None


@given(st.integers(min_value=0, max_value=3 * SPIKE_PATIENCE), REGIMES)
def test_fires_after_more_than_patience_consecutive_spikes(before: int, regime: Regime) -> None:
    window_sum = float(SPIKE_WINDOW)  # mean 1.0
    spiked = spike(2.0, window_sum, before=before, regime=regime)
    calm = spike(1.0, window_sum, before=before, regime=regime)
    assert spiked is not None and spiked.ok == (before + 1 <= SPIKE_PATIENCE)
    assert calm is not None and calm.ok and calm.metrics["consecutive"] == 0


@given(st.sampled_from([math.nan, math.inf]))
def test_non_finite_loss_is_a_spike(bad: float) -> None:
    decision = spike(bad, float(SPIKE_WINDOW), before=SPIKE_PATIENCE)
    assert decision is not None and not decision.ok


# -- INV-TRAIN-004 initial_loss ------------------------------------------------------------


@given(vocab)
def test_initial_loss_band_is_half_ln_vocab_either_side(v: int) -> None:
    regime = FromScratch(v)
    upper = (1.0 + INITIAL_TOLERANCE) * math.log(v)
    lower = (1.0 - INITIAL_TOLERANCE) * math.log(v)
    assert initial(upper, regime=regime).ok
    assert initial(lower, regime=regime).ok
    above = initial(math.nextafter(upper, math.inf), regime=regime)
    below = initial(math.nextafter(lower, 0.0), regime=regime)
    assert not above.ok and above.comparison == "<="
    assert not below.ok and below.comparison == ">="


@given(vocab, st.floats(min_value=-0.45, max_value=0.45))
def test_cold_start_near_ln_vocab_passes(v: int, jitter: float) -> None:
    assert initial(math.log(v) * (1.0 + jitter), regime=FromScratch(v)).ok


@given(vocab, st.floats(min_value=0.0, max_value=0.49))
def test_far_below_chance_fires_as_leakage(v: int, fraction: float) -> None:
    decision = initial(math.log(v) * fraction, regime=FromScratch(v))
    assert not decision.ok and "leak" in decision.hint


def test_initial_loss_applies_to_cold_starts_only() -> None:
    """A finetune starts below chance by design; seed 003's vocabulary bounds the band."""
    assert INITIAL.regimes == ["from_scratch"]
    decision = initial(10.9, regime=FromScratch(50257))  # ln V ≈ 10.82
    assert decision.ok and decision.evaluated == "(1 + 0.5) * ln(50257) = 16.2374"


# -- INV-TRAIN-006 expression: tokens_per_sec >= 0 -----------------------------------------


@given(ANY_FLOAT, REGIMES)
def test_throughput_must_be_non_negative(tps: float, regime: Regime) -> None:
    decision = throughput({"tokens_per_sec": tps}, regime=regime)
    assert decision is not None and decision.ok == (tps >= 0)


def test_throughput_boundary_and_absence() -> None:
    params = THROUGHPUT.params
    zero = check_expression(
        metric_values={"tokens_per_sec": 0.0}, params=params, context=CheckContext(Finetune())
    )
    assert zero is not None and zero.ok
    tiny = check_expression(
        metric_values={"tokens_per_sec": -5e-324}, params=params, context=CheckContext(Finetune())
    )
    assert tiny is not None and not tiny.ok
    assert (
        check_expression(
            metric_values={"loss": 1.0}, params=params, context=CheckContext(Finetune())
        )
        is None
    )


def test_gradient_norm_hint_names_the_side() -> None:
    """The hint says which way the norm left its range (a fix differs for each side)."""
    exploding = grad(1e9, GRAD.params.patience)
    vanishing = grad(1e-9, GRAD.params.patience)
    assert exploding.hint.startswith("exploding") and not exploding.ok
    assert vanishing.hint.startswith("vanishing") and not vanishing.ok


def test_gradient_norm_accepts_a_degenerate_range() -> None:
    """min_norm == max_norm is a legal (if strict) range: only that exact norm passes."""
    point = GRAD.params.model_copy(update={"min_norm": GRAD.params.max_norm})
    assert check_gradient_norm(
        norm=100.0, streak=0, params=point, context=CheckContext(Finetune())
    ).ok


def test_initial_loss_zero_tolerance_is_legal_and_exact() -> None:
    """tolerance 0 means L0 must equal ln C exactly; the bound reported sits on ln C's side."""
    exact = INITIAL.params.model_copy(update={"tolerance": Formula.constant(0.0)})
    at_chance = check_initial_loss(
        loss=math.log(50257), params=exact, context=CheckContext(FromScratch(50257))
    )
    assert at_chance.ok


@given(st.integers(min_value=2, max_value=1_000_000))
def test_initial_loss_at_chance_reports_the_upper_bound(v: int) -> None:
    decision = initial(math.log(v), regime=FromScratch(v))
    assert decision.ok and decision.comparison == "<="
    assert math.isclose(decision.limit, 1.5 * math.log(v), rel_tol=1e-12)
    below = initial(math.nextafter(math.log(v), 0.0), regime=FromScratch(v))
    assert below.ok and below.comparison == ">="
