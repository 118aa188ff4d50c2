"""Liveness at scale (issue 12): the collapse decision from cheap bounds decides exactly as an
exhaustive O(N²) search does.

``reference_spread`` below is the old search, kept verbatim: every pair in float32 on
float64-centred rows, the longest pair recomputed in float64. Its float32 pick can be a pair
a few float32 ulps shorter than the longest, so the ground truth is every pair's float64
length (``brute_diameter``): the exact spread matches it and is never shorter than the old
pick, and the registered ``embedding_collapse`` check (which asks :func:`spread` only for
the side of its limit) decides ``ratio ≥ limit`` for that exact ratio on small random and
degenerate inputs, at limits on, just beside and far from it.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext
from traingate.checks.liveness import EmbeddingCollapse, EmbeddingCollapseParams
from traingate.contract.regime import Finetune
from traingate.metrics.liveness import (
    collapse_ratio,
    effective_rank,
    max_pairwise_distance,
    mean_norm,
    spread,
)


def reference_spread(embeddings: torch.Tensor, chunk: int = 1024) -> tuple[float, float]:
    """The pre-issue-12 ``spread``: (diameter, scale) by exhaustive search, O(N²·D)."""
    x = embeddings.flatten(start_dim=1) if embeddings.ndim > 2 else embeddings
    n = x.shape[0]
    exact = x.double()
    centred = (exact - exact.mean(dim=0)).float()
    sq = (centred * centred).sum(dim=1)
    best, best_i, best_j = -math.inf, 0, 1
    for start in range(0, n, chunk):
        block = centred[start : start + chunk]
        partial = torch.addmm(sq[None, start:], block, centred[start:].T, alpha=-2.0)
        row_max, col = partial.max(dim=1)
        value, row = (row_max + sq[start : start + chunk]).max(dim=0)
        if value.item() > best:
            best = value.item()
            best_i, best_j = start + int(row.item()), start + int(col[row].item())
    diameter = float((exact[best_i] - exact[best_j]).norm().item())
    return diameter, float(exact.norm(dim=1).mean().item())


def reference_ratio(embeddings: torch.Tensor) -> float:
    diameter, scale = reference_spread(embeddings)
    return diameter / scale if scale > 0 else 0.0


def brute_diameter(x: torch.Tensor) -> float:
    rows = x.double()
    pairs = itertools.combinations(range(rows.shape[0]), 2)
    return max((rows[i] - rows[j]).norm().item() for i, j in pairs)


def exact_ratio(x: torch.Tensor) -> float:
    """The collapse ratio from every pair's float64 length: the decision's ground truth (the
    old search picked its pair by a float32 Gram value, so two pairs within float32 rounding
    of each other could give it the shorter one, an ulp-scale error at the limit)."""
    scale = float(x.double().norm(dim=1).mean().item())
    return brute_diameter(x) / scale if scale > 0 else 0.0


def collapse_decision(embeddings: torch.Tensor, limit: float):
    check = EmbeddingCollapse(EmbeddingCollapseParams(min_ratio=limit), CheckContext(Finetune()))
    check.update({"embeddings": embeddings})
    return check.verdict()


def limits_around(ratio: float) -> list[float]:
    """Limits on the ratio, one float either side, within the bounds' factor 2 and past it."""
    near = [ratio, math.nextafter(ratio, math.inf), math.nextafter(ratio, -math.inf)]
    return [
        *near,
        ratio * 0.3,
        ratio * 0.8,
        ratio * 0.99,
        ratio * 1.01,
        ratio * 1.3,
        ratio * 3,
        0.0,
    ]


@st.composite
def point_sets(draw: st.DrawFn, max_n: int = 24) -> torch.Tensor:
    """Small (N, D) sets, N ≥ 2: Gaussian, duplicated, on a line, one far row, all identical,
    all zero; at scales 1e-12 … 1e12 around a common offset up to 1e3 × the spread."""
    n = draw(st.integers(2, max_n))
    dim = draw(st.integers(1, 8))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    shape = draw(st.sampled_from(["gauss", "dupes", "line", "outlier", "same", "zero", "ints"]))
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    if shape == "dupes":
        x = x[torch.randint(0, max(1, n // 3), (n,), generator=g)]
    elif shape == "line":
        x = torch.rand(n, 1, generator=g, dtype=torch.float64) * torch.randn(dim, generator=g)
    elif shape == "outlier":
        x[draw(st.integers(0, n - 1))] *= 50
    elif shape == "same":
        x = x[:1].expand(n, dim).clone()
    elif shape == "zero":
        x = torch.zeros(n, dim, dtype=torch.float64)
    elif shape == "ints":
        x = torch.randint(-3, 4, (n, dim), generator=g).double()
    scale = 10.0 ** draw(st.integers(-12, 12))
    offset = draw(st.sampled_from([0.0, 1.0, 1e3])) * torch.randn(dim, generator=g)
    x = (x + offset) * scale
    return x.to(draw(st.sampled_from([torch.float32, torch.float64])))


@given(point_sets(), st.floats(0.0, 3.0))
@settings(max_examples=300, deadline=None)
def test_the_collapse_decision_is_the_exhaustive_searchs(x: torch.Tensor, extra: float) -> None:
    ratio = exact_ratio(x)
    for limit in [*limits_around(ratio), extra]:
        decision = collapse_decision(x, limit)
        assert decision.limit == limit
        assert decision.ok == (ratio >= limit), (limit, ratio, decision)
        upper = decision.metrics.get("max_pairwise_distance_upper")
        if upper is None:  # exact: the very number the exhaustive search gave
            assert decision.observed == ratio
        else:  # the bound on the limit's side: the longest pair found, or the upper bound
            scale = decision.metrics["mean_norm"]
            lower = decision.metrics["max_pairwise_distance"]
            assert decision.observed in (lower / scale, upper / scale)


@given(point_sets(), st.integers(1, 7))
@settings(max_examples=200, deadline=None)
def test_exact_spread_is_the_exhaustive_searchs(x: torch.Tensor, chunk: int) -> None:
    old_diameter, scale = reference_spread(x)
    measured = spread(x, chunk)
    assert measured.exact and measured.upper is None
    # the longest pair in float64 (the old search's float32 pick can be a shorter one)
    assert measured.diameter == pytest.approx(brute_diameter(x), rel=1e-12, abs=0.0)
    assert measured.diameter >= old_diameter * (1 - 1e-12)
    assert measured.scale == scale and mean_norm(x) == scale
    assert measured.ratio == collapse_ratio(x, chunk)
    assert max_pairwise_distance(x, chunk) == measured.diameter


@given(point_sets(), st.floats(0.0, 3.0))
@settings(max_examples=200, deadline=None)
def test_bounds_bracket_the_diameter(x: torch.Tensor, limit: float) -> None:
    diameter = brute_diameter(x)
    measured = spread(x, limit=limit)
    upper = measured.diameter if measured.upper is None else measured.upper
    assert measured.diameter <= diameter <= upper
    # r₍₁₎ + r₍₂₎ ≤ 2·r₍₁₎ ≤ 2·diameter, but for the rounding of the centroid (float32 when
    # the rows are): identical rows still get radii of about an ulp of their norm
    assert upper <= 2 * diameter * (1 + 1e-4) + 1e-6 * measured.scale


def test_one_embedding_has_no_spread() -> None:
    assert collapse_decision(torch.ones(1, 8), 0.01) is None
    with pytest.raises(ValueError):
        spread(torch.ones(1, 8), limit=0.01)


def side_of(x: torch.Tensor, limit: float) -> float:
    """The ratio the collapse check decides on (its RankMe rejects non-finite rows first)."""
    measured = spread(x, limit=limit)
    return measured.ratio_upper if measured.ratio_upper < limit else measured.ratio


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("limit", [0.01, 1.0])
def test_non_finite_embeddings_fail_as_before(bad: float, limit: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=g)
    x[7, 2] = bad
    assert not side_of(x, limit) >= limit and not reference_ratio(x) >= limit
    with pytest.raises(torch.linalg.LinAlgError):  # as before: eigvalsh of a non-finite Gram
        collapse_decision(x, limit)


def test_a_nan_row_reads_ratio_zero_as_before() -> None:
    x = torch.randn(10, 4)
    x[3, 1] = math.nan
    assert spread(x).ratio == reference_ratio(x) == 0.0
    assert side_of(x, 0.0) == 0.0  # 0 ≥ 0, as the exhaustive search had it


def test_bounds_are_exact_where_float32_squares_overflow() -> None:
    # the old float32 search picked an arbitrary pair once ‖u‖² overflowed float32
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64) * 1e25
    assert spread(x).diameter == pytest.approx(brute_diameter(x), rel=1e-12)
    tiny = torch.randn(40, 5, generator=g, dtype=torch.float64) * 1e-25
    assert spread(tiny).diameter == pytest.approx(brute_diameter(tiny), rel=1e-12)


def test_effective_rank_and_mean_norm_match_the_single_gemm() -> None:
    g = torch.Generator().manual_seed(4)
    for x in (torch.randn(20_000, 48, generator=g), torch.randn(30, 48, generator=g)):
        rows = x.double()
        gram = rows.T @ rows if rows.shape[0] >= rows.shape[1] else rows @ rows.T
        sigma = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
        p = sigma / sigma.sum()
        expected = math.exp(-torch.special.xlogy(p, p).sum().item())
        assert effective_rank(x) == pytest.approx(expected, rel=1e-9)
        assert mean_norm(x) == rows.norm(dim=1).mean().item()


def collapse(n: int, radius: float, antipodes: bool, seed: int = 0) -> torch.Tensor:
    """Seed 002's shape: a common vector of norm 6.98 plus noise in a ball of ``radius``."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(384, generator=g)
    noise = torch.nn.functional.normalize(torch.randn(n, 384, generator=g), dim=1)
    noise = noise * radius * torch.rand(n, 1, generator=g)
    if antipodes:
        noise[0] = noise[0] / noise[0].norm() * radius
        noise[1] = -noise[0]
    return common / common.norm() * 6.98 + noise


@pytest.mark.parametrize(
    ("x", "ok"),
    [
        (collapse(20_000, 0.010, antipodes=True), False),
        (collapse(20_000, 0.010, antipodes=False), False),
        (torch.randn(20_000, 384, generator=torch.Generator().manual_seed(5)), True),
    ],
    ids=["seed-002", "ball", "iid"],
)
def test_far_from_the_limit_the_bounds_decide(x: torch.Tensor, ok: bool) -> None:
    measured = spread(x, limit=0.01)
    assert not measured.exact  # decided from the bounds, no exhaustive search
    assert (measured.ratio >= 0.01) == ok and (measured.ratio_upper < 0.01) != ok
    decision = collapse_decision(x, 0.01)
    assert decision.ok == ok and decision.metrics["max_pairwise_distance_upper"] > 0


def test_between_the_bounds_the_search_is_pruned_and_exact() -> None:
    # a collapse whose ratio (≈ 0.0029) sits inside its bounds' band: a limit of 0.0025
    # needs a pair ≥ 0.0175 and finds the planted antipodes among the few rows near the rim
    x = collapse(20_000, 0.010, antipodes=True)
    measured = spread(x, limit=0.0025)
    assert measured.diameter == pytest.approx(0.020, rel=1e-4) and measured.ratio >= 0.0025
    fails = spread(x, limit=0.003)
    assert fails.ratio_upper < 0.003
    assert collapse_decision(x, 0.0025).ok and not collapse_decision(x, 0.003).ok
