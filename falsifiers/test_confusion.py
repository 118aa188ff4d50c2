"""Falsifiers for C-CONFUSION (INV-CONF-001/002): seed 001's city-start tripwires.

The rate limit and the worst-locale rule are tested on the pure decision with the shipped
params; the label sets, the locale grouping and the first judged step are tested through the
registered check on token streams, so a changed label, number or comparison fails here.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from traingate.checks import REGISTRY, CheckContext
from traingate.checks.confusion import check_confusion_rate
from traingate.checks.liveness import is_judged
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import invariant

TO_POSTCODE, TO_O = invariant("INV-CONF-001"), invariant("INV-CONF-002")
WIRES = st.sampled_from([TO_POSTCODE, TO_O])
REGIMES = st.sampled_from([Finetune(), FromScratch(8000)])
MAX_RATE, FIRST_STEP = 0.01, 20_000
OUT, B_LOC, I_LOC, B_REG, I_REG, B_PC, I_PC = range(7)
US, FR, DE = range(3)

counts = st.integers(1, 5000).flatmap(lambda t: st.tuples(st.integers(0, t), st.just(t)))
locales = st.dictionaries(st.sampled_from(["US", "FR", "DE"]), counts, min_size=1)


def decide(wire, *runs: tuple[int, int, int, int], step: int = FIRST_STEP):
    """The registered check at ``step`` on a token stream given as runs of
    (count, gold, predicted, locale)."""
    check = REGISTRY[wire.check](wire.params, CheckContext(Finetune()))
    gold, pred, locale = (
        torch.cat([torch.full((run[0],), run[i]) for run in runs]) for i in (1, 2, 3)
    )
    check.update({"labels": gold, "predictions": pred, "groups": locale, "step": step})
    return check.verdict()


@given(WIRES, locales, REGIMES)
def test_each_locale_is_at_most_one_percent(wire, by_locale, regime) -> None:
    decision = check_confusion_rate(
        counts=by_locale, params=wire.params, context=CheckContext(regime)
    )
    worst = max(h / t for h, t in by_locale.values())
    assert decision is not None and decision.observed == worst
    assert decision.ok == (worst <= MAX_RATE)
    assert check_confusion_rate(
        counts={"DE": (1, 100)}, params=wire.params, context=CheckContext(regime)
    ).ok
    assert check_confusion_rate(
        counts={"DE": (100, 10_000)}, params=wire.params, context=CheckContext(regime)
    ).ok
    assert not check_confusion_rate(
        counts={"DE": (1, 99)}, params=wire.params, context=CheckContext(regime)
    ).ok
    assert not check_confusion_rate(
        counts={"US": (0, 7), "DE": (5, 5)}, params=wire.params, context=CheckContext(regime)
    ).ok
    assert not check_confusion_rate(
        counts={"DE": (10_001, 1_000_000)}, params=wire.params, context=CheckContext(regime)
    ).ok


@given(WIRES, st.integers(2, 50))
def test_the_worst_locale_decides(wire, de_percent: int) -> None:
    # DE at de_percent %, US and FR clean and large: the pooled rate stays under 1 %
    bad = B_PC if wire is TO_POSTCODE else OUT
    runs = [(5000, B_LOC, B_LOC, US), (5000, B_LOC, B_LOC, FR), (de_percent, B_LOC, bad, DE)]
    runs.append((100 - de_percent, B_LOC, B_LOC, DE))
    assert de_percent / 10_100 <= MAX_RATE
    decision = decide(wire, *runs)
    assert decision is not None and not decision.ok
    assert decision.observed == de_percent / 100 and "DE" in decision.detail


@given(st.integers(2, 100))
def test_postcode_wire_reads_zero_while_the_o_wire_fires(lost: int) -> None:
    # Saint-Albans: `lost` of 100 German city starts tagged OUT, none ever tagged postcode
    runs = [(100, B_LOC, B_LOC, US), (100, I_LOC, I_LOC, DE), (100, B_PC, B_PC, DE)]
    runs += [(lost, B_LOC, OUT, DE), (100 - lost, B_LOC, B_LOC, DE)]
    postcode = decide(TO_POSTCODE, *runs)
    to_o = decide(TO_O, *runs)
    assert postcode is not None and postcode.ok and postcode.observed == 0.0
    assert to_o is not None and not to_o.ok and to_o.observed == lost / 100


@given(WIRES, st.sampled_from([B_PC, I_PC, OUT]))
def test_region_starts_are_city_starts_too(wire, predicted: int) -> None:
    decision = decide(
        wire, (1, B_REG, predicted, FR), (1, B_REG, B_REG, FR), (1, I_REG, predicted, FR)
    )
    watched = predicted == OUT if wire is TO_O else predicted in (B_PC, I_PC)
    assert decision is not None and decision.observed == (0.5 if watched else 0.0)
    assert decision.ok == (not watched)


@given(WIRES, st.integers(0, 10**7), st.none() | st.integers(0, 1000))
def test_judged_from_step_20000(wire, step: int, epoch: int | None) -> None:
    assert is_judged(wire.params, step, epoch) == (step >= FIRST_STEP)
    assert not is_judged(wire.params, None, epoch)
    collapsed = (3, B_LOC, B_PC if wire is TO_POSTCODE else OUT, DE)
    assert decide(wire, collapsed, step=FIRST_STEP - 1) is None
    assert not decide(wire, collapsed, step=FIRST_STEP).ok


@given(WIRES, REGIMES)
def test_nothing_measured_is_not_a_pass(wire, regime) -> None:
    assert check_confusion_rate(counts={}, params=wire.params, context=CheckContext(regime)) is None
    assert (
        check_confusion_rate(
            counts={"US": (0, 0), "DE": (0, 0)}, params=wire.params, context=CheckContext(regime)
        )
        is None
    )
    assert decide(wire, (5, OUT, OUT, US), (5, B_PC, B_PC, DE)) is None
