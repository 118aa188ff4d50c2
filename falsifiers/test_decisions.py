"""Falsifiers for C-MLM-DECISIVE DEC-MLM-001 (seed 000's pre-registered kill-point).

Each property writes sidecars for two runs in the layout the rule reads, applies the
shipped rule with ``evaluate_rule``, and compares with the prose rule computed here in exact
arithmetic: SCALE if gap ≥ 1 pp; else if gap ≥ −0.5 pp, SHIP if the gains hold, else
MARGINAL; else DROP if the gains do not hold, else CONFLICTED ("gains hold": harness
Δ ≥ 0 and calibration Δ ≤ 0). Changing a threshold (1.0, −0.5), a comparison, the order of
the branches, a metric's file or field, or the gains-hold reading fails here.
"""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from traingate.contract.shipped import shipped_contracts
from traingate.decisions import DecisionResult, DecisionRule, evaluate_rule


def decision_rule(rule_id: str) -> DecisionRule:
    """A shipped decision rule by id."""
    for contract in shipped_contracts():
        for rule in contract.decisions:
            if rule.id == rule_id:
                return rule
    raise KeyError(f"no shipped contract defines {rule_id}")


RULE = decision_rule("DEC-MLM-001")

Counts = tuple[int, int]
Pair = tuple[Counts, Counts]
CalPair = tuple[Decimal, Decimal]


def prose_rule(gap: Fraction, harness: Fraction, calibration: Fraction) -> str:
    """Seed 000's kill-point, as the contract's comment reads it (pp for rates)."""
    gains_hold = harness >= 0 and calibration <= 0
    if gap >= 1:
        return "SCALE"
    if gap >= Fraction(-1, 2):
        return "SHIP" if gains_hold else "MARGINAL"
    return "CONFLICTED" if gains_hold else "DROP"


def write_run(run: Path, resolver: Counts, harness: Counts, calibration: Decimal) -> Path:
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "resolver.json").write_text(
        json.dumps({"acc_at_1": {"correct": resolver[0], "total": resolver[1]}})
    )
    (run / "eval" / "harness.json").write_text(
        json.dumps({"passed": harness[0], "total": harness[1]})
    )
    (run / "eval" / "calibration.json").write_text(f'{{"wrong_confidence_p90": {calibration}}}')
    return run


def decide(a: tuple[Counts, Counts, Decimal], b: tuple[Counts, Counts, Decimal]) -> DecisionResult:
    with tempfile.TemporaryDirectory() as tmp:
        return evaluate_rule(RULE, write_run(Path(tmp) / "a", *a), write_run(Path(tmp) / "b", *b))


def pp(counts: Counts) -> Fraction:
    return Fraction(100 * counts[0], counts[1])


def expected(a: tuple[Counts, Counts, Decimal], b: tuple[Counts, Counts, Decimal]) -> str:
    return prose_rule(pp(a[0]) - pp(b[0]), pp(a[1]) - pp(b[1]), Fraction(a[2] - b[2]))


@st.composite
def rate_pair(draw: st.DrawFn, centre_pp: st.SearchStrategy[Fraction]) -> Pair:
    """(A, B) counts whose A − B lands on or a few trials either side of a target in pp."""
    n = 200 * draw(st.integers(1, 60))  # 1 pp and 0.5 pp are whole numbers of trials
    target = draw(centre_pp) * n / 100
    b = draw(st.integers(0, n))
    a = b + int(target) + draw(st.integers(-3, 3))
    a = min(max(a, 0), n)
    return (a, n), (b, n)


@st.composite
def level_pair(draw: st.DrawFn) -> Pair:
    """Harness counts that differ by a few passes either way (or not at all)."""
    n = draw(st.integers(1, 1000))
    b = draw(st.integers(0, n))
    a = min(max(b + draw(st.integers(-2, 2)), 0), n)
    return (a, n), (b, n)


@st.composite
def calibration_pair(draw: st.DrawFn) -> CalPair:
    """p90 wrong-prediction confidences at 3 decimals, equal or 0.001-0.002 apart."""
    b = draw(st.integers(500, 998))
    a = b + draw(st.integers(-2, 2))
    return Decimal(a) / 1000, Decimal(b) / 1000


def decided(resolver: Pair, harness: Pair, cal: CalPair) -> DecisionResult:
    """The shipped rule applied to arms A and B, checked against the prose rule."""
    a, b = (resolver[0], harness[0], cal[0]), (resolver[1], harness[1], cal[1])
    result = decide(a, b)
    assert result.verdict == expected(a, b)
    return result


SEED_A = ((9730, 10000), (79, 415), Decimal("0.949"))
SEED_B = ((9750, 10000), (86, 415), Decimal("0.949"))
SETTINGS = settings(max_examples=50, deadline=None)


@SETTINGS
@given(rate_pair(st.just(Fraction(1))), level_pair(), calibration_pair())
@example(((9850, 10000), (9750, 10000)), ((79, 415), (86, 415)), (Decimal(1), Decimal(0)))
@example(((9849, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(0), Decimal(0)))
def test_scale_threshold_is_one_pp(resolver: Pair, harness: Pair, cal: CalPair) -> None:
    gap = pp(resolver[0]) - pp(resolver[1])
    result = decided(resolver, harness, cal)
    assert (result.verdict == "SCALE") == (gap >= 1), (gap, result.verdict)


@SETTINGS
@given(rate_pair(st.just(Fraction(-1, 2))), level_pair(), calibration_pair())
@example(((9700, 10000), (9750, 10000)), ((79, 415), (86, 415)), (Decimal(0), Decimal(0)))
@example(((9699, 10000), (9750, 10000)), ((79, 415), (86, 415)), (Decimal(0), Decimal(0)))
@example(((9700, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(0), Decimal(0)))
@example(((9699, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(0), Decimal(0)))
def test_tie_band_floor_is_minus_half_pp(resolver: Pair, harness: Pair, cal: CalPair) -> None:
    gap = pp(resolver[0]) - pp(resolver[1])
    result = decided(resolver, harness, cal)
    in_band = result.verdict in ("SHIP", "MARGINAL")
    assert in_band == (Fraction(-1, 2) <= gap < 1), (gap, result.verdict)


@SETTINGS
@given(
    rate_pair(st.sampled_from([Fraction(0), Fraction(-1, 5), Fraction(-2)])),
    level_pair(),
    calibration_pair(),
)
@example(((9730, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(0), Decimal(0)))
@example(((9730, 10000), (9750, 10000)), ((87, 415), (86, 415)), (Decimal(1), Decimal(0)))
@example(((9730, 10000), (9750, 10000)), ((85, 415), (86, 415)), (Decimal(0), Decimal(1)))
@example(((9000, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(0), Decimal(0)))
@example(((9000, 10000), (9750, 10000)), ((86, 415), (86, 415)), (Decimal(1), Decimal(0)))
def test_gains_hold_means_harness_not_worse_and_calibration_not_worse(
    resolver: Pair, harness: Pair, cal: CalPair
) -> None:
    gains_hold = pp(harness[0]) >= pp(harness[1]) and cal[0] <= cal[1]
    result = decided(resolver, harness, cal)
    if result.verdict in ("SHIP", "MARGINAL"):
        assert (result.verdict == "SHIP") == gains_hold
    else:
        assert result.verdict in ("DROP", "CONFLICTED", "SCALE")
        if result.verdict != "SCALE":
            assert (result.verdict == "CONFLICTED") == gains_hold


@SETTINGS
@given(
    rate_pair(st.fractions(min_value=-3, max_value=3, max_denominator=4)),
    level_pair(),
    calibration_pair(),
)
def test_verdict_matches_the_prose_rule(resolver: Pair, harness: Pair, cal: CalPair) -> None:
    result = decided(resolver, harness, cal)
    assert sum(branch.taken for branch in result.branches) == 1


def test_seed_000_numbers_give_marginal() -> None:
    """The published numbers: a tie on resolver, harness down, calibration flat → MARGINAL."""
    result = decide(SEED_A, SEED_B)
    assert result.verdict == "MARGINAL" == expected(SEED_A, SEED_B)
    assert result.tie is not None and result.tie.metric == "resolver"
    assert (result.tie.alpha, result.tie.power) == (0.05, 0.8)
    assert round(result.tie.abs_z, 2) == 0.89
    directions = {m.name: m.higher_is_better for m in result.metrics}
    assert directions == {"resolver": True, "harness": True, "calibration": False}
