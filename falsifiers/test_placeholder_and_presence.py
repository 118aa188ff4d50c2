"""Falsifiers for C-TRAIN-PRETRAIN's INV-TRAIN-007 (no placeholder) and INV-TRAIN-008
(metrics present).

Each property reads the params from the shipped contract (or builds its own where the
shipped ones leave a feature off) and calls the pure functions the Guard runs. The numbers
asserted come from the origin, not from the YAML: a step function that returned loss 1.0
and grad_norm 1.0 once its data ran dry, caught after 5 repeats; every step must carry its
loss and gradient norm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from hypothesis import assume, given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext, Decision
from traingate.checks.metrics_present import MetricsPresentParams, check_metrics_present
from traingate.checks.no_placeholder import (
    NoPlaceholderParams,
    Streaks,
    advance,
    check_no_placeholder,
)
from traingate.contract.regime import Finetune
from traingate.contract.shipped import invariant

PLACEHOLDER = invariant("INV-TRAIN-007")
PRESENCE = invariant("INV-TRAIN-008")
CONTEXT = CheckContext(Finetune())

WINDOW = 5  # the origin's placeholder is caught on its 5th exact repeat
OBSERVED = ["loss", "grad_norm"]  # what every traingate loop hands guard.step
REAL = st.floats(min_value=1e-3, max_value=20.0, allow_nan=False)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
windows = st.integers(min_value=2, max_value=12)


def run(
    steps: Iterable[Mapping[str, float]], params: NoPlaceholderParams | None = None
) -> list[Decision | None]:
    """Each step's decision, the streaks folded with :func:`advance` as the Guard's check does
    (a step carrying none of the observations is not evaluated and changes nothing)."""
    p = params or PLACEHOLDER.params
    names = set(p.observations) | set(p.fingerprint)
    streaks = Streaks({}, 0, 0)
    out: list[Decision | None] = []
    for step in steps:
        observed = {n: v for n, v in step.items() if n in names}
        if not observed:
            out.append(None)
            continue
        streaks = advance(observed=observed, streaks=streaks, params=p)
        out.append(check_no_placeholder(**streaks._asdict(), params=p, context=CONTEXT))
    return out


def final(decisions: list[Decision | None]) -> Decision:
    """The last step's decision, which must have been made."""
    assert decisions[-1] is not None
    return decisions[-1]


def oks(decisions: list[Decision | None]) -> list[bool | None]:
    return [None if d is None else d.ok for d in decisions]


def varying(n: int, start: float) -> list[float]:
    """``n`` distinct real values."""
    return [start + i * 0.125 for i in range(n)]


def test_shipped_placeholder_params() -> None:
    params = PLACEHOLDER.params
    assert isinstance(params, NoPlaceholderParams)
    assert params.window == WINDOW and params.observations == OBSERVED and not params.fingerprint
    assert PLACEHOLDER.at == "step" and PLACEHOLDER.on_violation == "abort"


@given(value=REAL, name=st.sampled_from(OBSERVED), extra=st.integers(min_value=0, max_value=5))
def test_constant_observation_fires_exactly_at_window(value: float, name: str, extra: int) -> None:
    other = next(n for n in OBSERVED if n != name)
    steps = [{name: value, other: v} for v in varying(WINDOW + extra, 2.0)]
    decisions = run(steps)
    assert oks(decisions) == [None] * (WINDOW - 1) + [False] * (extra + 1)
    fired = decisions[WINDOW - 1]
    assert fired is not None
    assert fired.observed == WINDOW and fired.limit == WINDOW and fired.comparison == "<"
    assert name in fired.detail and repr(value) in fired.detail and "ran dry" in fired.hint
    assert fired.metrics[f"streak/{name}"] == WINDOW and fired.metrics[f"streak/{other}"] == 1


@given(window=windows, value=REAL)
def test_window_minus_one_repeats_pass(window: int, value: float) -> None:
    params = NoPlaceholderParams(window=window)
    steps = [{"loss": v} for v in varying(window, 3.0)] + [{"loss": value}] * (window - 1)
    decisions = run(steps, params)
    assert oks(decisions) == [None] * (window - 1) + [True] * window
    last = decisions[-1]
    assert last is not None and last.observed == window - 1 and last.limit == window
    assert not final(run([*steps, {"loss": value}], params)).ok


@given(window=windows, value=REAL, at=st.integers(min_value=1, max_value=11))
def test_any_change_resets_the_streak(window: int, value: float, at: int) -> None:
    assume(at < window)
    changed = math.nextafter(value, math.inf)  # one ulp: still a change
    params = NoPlaceholderParams(window=window, observations=["loss"])
    steps = [{"loss": value}] * at + [{"loss": changed}] * (window - 1)
    decisions = run(steps, params)
    assert all(d is None or d.ok for d in decisions)
    last = decisions[-1]
    assert last is not None and last.metrics["streak/loss"] == window - 1
    assert not final(run([*steps, {"loss": changed}], params)).ok


@given(value=REAL, gaps=st.lists(st.booleans(), min_size=WINDOW, max_size=12))
def test_absent_steps_leave_the_streak_alone(value: float, gaps: list[bool]) -> None:
    steps: list[dict[str, float]] = []
    for gap in gaps:
        steps += [{"lr": 0.1}] if gap else []  # a step without loss or grad_norm
        steps.append({"loss": value})
    decisions = run(steps)
    assert [d.ok for d in decisions if d is not None] == [False] * (len(gaps) - WINDOW + 1)
    assert all(d is None for d, s in zip(decisions, steps, strict=True) if "loss" not in s)


@given(value=REAL, at=st.integers(min_value=1, max_value=WINDOW - 1))
def test_nan_breaks_a_streak(value: float, at: int) -> None:
    steps = [{"loss": value}] * (WINDOW + 1)  # the NaN leaves fewer than WINDOW either side
    steps[at] = {"loss": math.nan}
    decisions = run(steps)
    assert all(d is None or d.ok for d in decisions)  # never WINDOW equal values in a row
    nans = run([{"loss": math.nan}] * (2 * WINDOW))
    assert all(d is None or (d.ok and d.metrics["streak/loss"] == 0) for d in nans)
    assert oks(nans).count(None) == WINDOW - 1


@given(window=windows, loss=REAL, norm=REAL)
def test_fingerprint_match_fires_at_window(window: int, loss: float, norm: float) -> None:
    fingerprint = {"loss": loss, "grad_norm": norm}
    params = NoPlaceholderParams(observations=["lr"], window=window, fingerprint=fingerprint)
    steps = [{**fingerprint, "lr": v} for v in varying(window, 0.5)]
    decisions = run(steps, params)
    assert oks(decisions) == [None] * (window - 1) + [False]
    fired = decisions[-1]
    assert fired is not None and fired.observed == window and "fingerprint" in fired.detail
    assert fired.metrics["fingerprint_streak"] == window
    # one field off by one ulp, or missing, resets the fingerprint streak
    off = dict(steps[-1], grad_norm=math.nextafter(norm, 0.0))
    broken = [*steps[:-1], off, *steps[: window - 1]]
    assert all(d is None or d.ok for d in run(broken, params))
    partial = [*steps[:-1], {"loss": loss, "lr": 9.0}, *steps[: window - 1]]
    assert all(d is None or d.ok for d in run(partial, params))
    unrelated = [*steps[:-1], {"lr": 9.0}]  # a step carrying no fingerprint field
    assert final(run(unrelated, params)).metrics["fingerprint_streak"] == window - 1


def present(observed: Mapping[str, float | None]) -> Decision:
    return check_metrics_present(observed=observed, params=PRESENCE.params)


def test_shipped_presence_params() -> None:
    params = PRESENCE.params
    assert isinstance(params, MetricsPresentParams) and params.observations == OBSERVED
    assert PRESENCE.at == "step" and PRESENCE.on_violation == "warn"


@given(loss=REAL, norm=REAL, absent=st.sampled_from(OBSERVED), as_none=st.booleans())
def test_missing_or_none_metric_is_a_violation(
    loss: float, norm: float, absent: str, as_none: bool
) -> None:
    observed: dict[str, float | None] = {"loss": loss, "grad_norm": norm}
    if as_none:
        observed[absent] = None
    else:
        del observed[absent]
    decision = present(observed)
    assert not decision.ok and decision.observed == 1 and decision.limit == 0
    assert f"missing {absent}" in decision.detail and absent in decision.hint
    assert decision.metrics == {"missing": 1.0, "non_finite": 0.0}
    both = present({})
    assert not both.ok and both.observed == 2 and both.metrics["missing"] == 2


@given(good=REAL, bad=NON_FINITE, which=st.sampled_from(OBSERVED))
def test_non_finite_metric_is_a_violation(good: float, bad: float, which: str) -> None:
    observed = {n: (bad if n == which else good) for n in OBSERVED}
    decision = present(observed)
    assert not decision.ok and decision.observed == 1
    assert f"non-finite {which}" in decision.detail
    assert decision.metrics == {"missing": 0.0, "non_finite": 1.0}


@given(loss=REAL, norm=REAL, extra=st.dictionaries(st.sampled_from(["lr", "x"]), REAL))
def test_all_present_and_finite_passes(loss: float, norm: float, extra: dict[str, float]) -> None:
    decision = present({"loss": loss, "grad_norm": norm, **extra})
    assert decision.ok and decision.observed == 0 and decision.limit == 0
    assert decision.metrics == {"missing": 0.0, "non_finite": 0.0}
