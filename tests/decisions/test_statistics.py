"""The two-proportion tie test: antisymmetry, a brute-force σ, the seed by hand, via files."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.decisions import evaluate_rule, two_proportion_test

from .conftest import RULE, write_run

# --- statistics ----------------------------------------------------------------------------


def brute_force_sigma_pp(sa: int, na: int, sb: int, nb: int) -> float:
    """σ of p̂_A − p̂_B from the pooled outcomes themselves (population variance), in pp."""
    outcomes = [1] * (sa + sb) + [0] * (na + nb - sa - sb)
    mean = sum(outcomes) / len(outcomes)
    variance = sum((x - mean) ** 2 for x in outcomes) / len(outcomes)
    return 100.0 * math.sqrt(variance * (1 / na + 1 / nb))


@st.composite
def two_arms(draw: st.DrawFn) -> tuple[int, int, int, int]:
    na, nb = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    return draw(st.integers(0, na)), na, draw(st.integers(0, nb)), nb


@settings(max_examples=150, deadline=None)
@given(two_arms())
def test_z_is_antisymmetric_and_sigma_matches_brute_force(arms: tuple[int, int, int, int]) -> None:
    sa, na, sb, nb = arms
    ab = two_proportion_test(sa, na, sb, nb)
    ba = two_proportion_test(sb, nb, sa, na)
    assert ba.delta == -ab.delta
    assert ba.sigma == ab.sigma and ba.sigma_unpooled == ab.sigma_unpooled and ba.mde == ab.mde
    assert ba.z == -ab.z and ba.p_value == ab.p_value
    assert ab.sigma == pytest.approx(brute_force_sigma_pp(sa, na, sb, nb), rel=1e-9, abs=1e-12)
    assert ab.delta == pytest.approx(100 * (sa / na - sb / nb), abs=1e-9)
    if ab.sigma > 0:
        assert ab.z == pytest.approx(ab.delta / ab.sigma)
    else:
        assert ab.delta == 0 and ab.z == 0


def test_seed_statistics_by_hand() -> None:
    tie = two_proportion_test(9730, 10000, 9750, 10000)
    pooled = 19480 / 20000
    assert tie.sigma == pytest.approx(100 * math.sqrt(pooled * (1 - pooled) * 2 / 10000))
    assert tie.z_alpha == pytest.approx(1.959964, abs=1e-6)
    assert tie.z_power == pytest.approx(0.841621, abs=1e-6)
    unpooled = math.sqrt(0.973 * 0.027 / 10000 + 0.975 * 0.025 / 10000)
    assert tie.mde == pytest.approx((1.959964 + 0.841621) * 100 * unpooled, rel=1e-6)
    assert two_proportion_test(9000, 10000, 8800, 10000).significant


def test_two_proportion_test_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        two_proportion_test(1, 0, 1, 1)
    with pytest.raises(ValueError):
        two_proportion_test(3, 2, 1, 1)


def test_statistics_through_files_match_the_pure_function() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = write_run(Path(tmp) / "a", (412, 500), (3, 9), "0.5")
        b = write_run(Path(tmp) / "b", (388, 480), (4, 9), "0.5")
        result = evaluate_rule(RULE, a, b)
    assert result.tie == two_proportion_test(412, 500, 388, 480, metric="resolver")
    assert result.symbols["sigma"] == result.tie.sigma and result.symbols["mde"] == result.tie.mde
