"""Liveness metrics against hand-computed and brute-force references (seed 002's collapse)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.metrics.liveness import (
    collapse_ratio,
    cosine_knn_graph,
    distinct_labels,
    effective_rank,
    macro_f1,
    max_pairwise_distance,
    mcl,
    mcl_clusters,
    mean_norm,
    spread,
    top1,
    top1_share,
)

label_lists = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40)


def seed_002_embeddings(n: int = 1500, dim: int = 384, seed: int = 0) -> torch.Tensor:
    """A common vector of norm 6.98 plus noise inside a ball of radius 0.010, with one
    antipodal pair on the sphere: max pairwise L2 exactly 0.020, mean norm ≈ 6.98."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(dim, generator=g, dtype=torch.float64)
    common = common / common.norm() * 6.98
    noise = torch.randn(n, dim, generator=g, dtype=torch.float64)
    radius = 0.010 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    noise = noise / noise.norm(dim=1, keepdim=True) * radius
    noise[1] = -noise[0] / noise[0].norm() * 0.010
    noise[0] = -noise[1]
    return common + noise


def gaussian_clusters(n: int, k: int, dim: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g)
    members = torch.arange(n) % k
    return centres[members] + 0.3 * torch.randn(n, dim, generator=g) / math.sqrt(dim)


def brute_macro_f1(pred: list[int], gold: list[int]) -> float:
    scores = []
    for c in sorted(set(pred) | set(gold)):
        tp = sum(p == g == c for p, g in zip(pred, gold, strict=True))
        fp = sum(p == c != g for p, g in zip(pred, gold, strict=True))
        fn = sum(g == c != p for p, g in zip(pred, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


# -- predictions --------------------------------------------------------------------------


@given(label_lists)
@settings(max_examples=40, deadline=None)
def test_distinct_and_top1_share_match_counting(values: list[int]) -> None:
    t = torch.tensor(values)
    assert distinct_labels(t) == len(set(values))
    assert top1_share(t) == max(Counter(values).values()) / len(values)
    most = max(Counter(values).values())
    assert top1(t) == (min(v for v, n in Counter(values).items() if n == most), top1_share(t))


def test_top1_share_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        top1_share(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError):
        top1(torch.tensor([], dtype=torch.long))


def test_macro_f1_by_hand() -> None:
    # class 0: TP1 FP1 FN0 → 2/3; class 1: TP1 FP0 FN2 → 1/2; class 2: predicted only → 0
    f1 = macro_f1(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]))
    assert f1 == pytest.approx((2 / 3 + 1 / 2 + 0) / 3, abs=1e-12)
    assert macro_f1(torch.tensor([3, 3, 5]), torch.tensor([3, 3, 5])) == 1.0
    assert macro_f1(torch.tensor([0, 0]), torch.tensor([1, 1])) == 0.0


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=50))
@settings(max_examples=60, deadline=None)
def test_macro_f1_matches_brute_force(pairs: list[tuple[int, int]]) -> None:
    pred, gold = [p for p, _ in pairs], [g for _, g in pairs]
    assert macro_f1(torch.tensor(pred), torch.tensor(gold)) == pytest.approx(
        brute_macro_f1(pred, gold), abs=1e-12
    )


def test_macro_f1_rejects_misaligned_or_empty_input() -> None:
    with pytest.raises(ValueError):
        macro_f1(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError):
        macro_f1(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))


# -- spread -------------------------------------------------------------------------------


@given(
    st.integers(min_value=2, max_value=23),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=0, max_value=2**16),
)
@settings(max_examples=40, deadline=None)
def test_max_pairwise_distance_matches_all_pairs(n: int, dim: int, chunk: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64) * 3 + 5
    brute = max((x[i] - x[j]).norm().item() for i, j in itertools.combinations(range(n), 2))
    assert max_pairwise_distance(x, chunk=chunk) == pytest.approx(brute, rel=1e-5)


def test_max_pairwise_distance_is_precise_under_a_large_common_offset() -> None:
    x = seed_002_embeddings(n=300)
    assert max_pairwise_distance(x, chunk=64) == pytest.approx(0.020, rel=1e-6)
    with pytest.raises(ValueError):
        max_pairwise_distance(x[:1])


def test_seed_002_collapse_ratio() -> None:
    x = seed_002_embeddings().float()
    assert mean_norm(x) == pytest.approx(6.98, abs=1e-4)
    assert collapse_ratio(x) == pytest.approx(0.020 / 6.98, rel=1e-3)
    measured = spread(x)
    assert (measured.diameter, measured.scale) == (max_pairwise_distance(x), mean_norm(x))
    assert measured.ratio == collapse_ratio(x)


def test_healthy_and_dead_collapse_ratios() -> None:
    g = torch.Generator().manual_seed(1)
    assert collapse_ratio(torch.randn(500, 384, generator=g)) > 1.0
    assert collapse_ratio(gaussian_clusters(300, 5)) > 0.5
    assert collapse_ratio(torch.zeros(10, 4)) == 0.0


def test_effective_rank_by_hand() -> None:
    assert effective_rank(torch.eye(5) * 3) == pytest.approx(5.0, rel=1e-9)
    rank_one = torch.outer(torch.arange(1.0, 9.0), torch.tensor([1.0, -2.0, 0.5]))
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    # singular values 3 and 1: p = (3/4, 1/4)
    two = torch.diag(torch.tensor([3.0, 1.0]))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(two) == pytest.approx(expected, rel=1e-9)
    assert effective_rank(torch.zeros(4, 3)) == 0.0


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_effective_rank_matches_svd(n: int, dim: int, seed: int) -> None:
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sigma = torch.linalg.svdvals(x)
    p = sigma / sigma.sum()
    expected = math.exp(-sum(v * math.log(v) for v in p.tolist() if v > 0))
    assert effective_rank(x) == pytest.approx(expected, rel=1e-6)
    assert 1.0 - 1e-9 <= effective_rank(x) <= min(n, dim) + 1e-9


def test_seed_002_has_effective_rank_near_one() -> None:
    # the noise floor's 383 small singular values lift RankMe a little above 1
    assert 1.0 < effective_rank(seed_002_embeddings(n=400)) < 1.5
    healthy = torch.randn(400, 384, generator=torch.Generator().manual_seed(2))
    assert effective_rank(healthy) > 300


# -- MCL ----------------------------------------------------------------------------------


def reference_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    """The documented k-NN cosine graph, entry by entry."""
    n = x.shape[0]
    unit = x / x.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    near = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -cos[i, j].item())
        near.append(set(others[:k]))
    w = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            if i == j:
                w[i, j] = 1.0
            elif j in near[i] or i in near[j]:
                w[i, j] = max(cos[i, j].item(), 0.0)
    return w


def reference_mcl_clusters(w: torch.Tensor, inflation: float) -> int:
    """MCL as documented, written plainly in float64, clusters by flood fill."""
    m = w.double() / w.double().sum(dim=0)
    for _ in range(100):
        m = m @ m
        m = m**inflation
        m = m / m.sum(dim=0)
        m = torch.where(m < 1e-5, torch.zeros_like(m), m)
        m = m / m.sum(dim=0)
        if (m.max(dim=0).values / (m * m).sum(dim=0) - 1).max() < 1e-4:
            break
    n = m.shape[0]
    adjacent = (m > 0) | (m > 0).T
    seen: set[int] = set()
    clusters = 0
    for start in range(n):
        if start in seen:
            continue
        clusters += 1
        stack = [start]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(j for j in range(n) if adjacent[node, j] and j not in seen)
    return clusters


@given(st.integers(8, 30), st.integers(1, 6), st.integers(0, 2**16))
@settings(max_examples=15, deadline=None)
def test_knn_graph_and_mcl_match_plain_references(n: int, k: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g) + torch.randn(5, generator=g)
    w = cosine_knn_graph(x, k)
    assert torch.allclose(w, reference_graph(x, k), atol=1e-5)
    assert torch.equal(w, w.T)
    clusters, points, _ = mcl_clusters(x, inflation=1.4, k=k)
    assert points == n
    assert clusters == reference_mcl_clusters(w, 1.4)


def test_mcl_separates_disconnected_cliques_and_stays_stochastic() -> None:
    block = torch.ones(4, 4)
    w = torch.block_diag(block, block, block)
    limit, rounds = mcl(w, inflation=1.4)
    assert torch.allclose(limit.sum(dim=0), torch.ones(12))
    assert 1 <= rounds < 100
    assert mcl_clusters(gaussian_clusters(90, 3))[0] == 3


def test_seed_002_collapse_is_one_cluster() -> None:
    clusters, points, _ = mcl_clusters(seed_002_embeddings().float())
    assert (clusters, points) == (1, 600)  # 1500 rows, clustered on a 600-row sample


def test_collapse_through_bf16_rounding_is_one_cluster() -> None:
    # identical up to bf16 rounding: many rows become exact duplicates (ties in the k-NN)
    x = seed_002_embeddings(n=400).to(torch.bfloat16).float()
    assert mcl_clusters(x)[0] == 1
    assert mcl_clusters(torch.zeros(50, 8))[0] == 1


def test_healthy_embeddings_have_structure() -> None:
    assert mcl_clusters(gaussian_clusters(400, 8, dim=384))[0] == 8
    random_features = torch.randn(400, 384, generator=torch.Generator().manual_seed(3))
    assert mcl_clusters(random_features)[0] >= 3


def test_sampling_is_deterministic_and_bounded() -> None:
    x = gaussian_clusters(700, 4)
    first = mcl_clusters(x, max_points=200)
    assert first == mcl_clusters(x, max_points=200)
    assert first[0] == 4 and first[1] == 200
    with pytest.raises(ValueError):
        mcl_clusters(torch.zeros(0, 3))
