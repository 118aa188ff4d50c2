"""Liveness metrics: is the model still making different predictions for different inputs?

Seed 002: a collapsed fine-tune produced one pooled embedding for every input (max pairwise
L2 0.020 at mean norm 6.98), predicted one label on 100 % of 1500 samples, and MCL found one
cluster at every inflation. Each function here measures one face of that failure; all take
tensors on any device and return Python numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "Spread",
    "collapse_ratio",
    "cosine_knn_graph",
    "distinct_labels",
    "effective_rank",
    "macro_f1",
    "max_pairwise_distance",
    "mcl",
    "mcl_clusters",
    "mean_norm",
    "spread",
    "top1",
    "top1_share",
]


def _rows(embeddings: Tensor) -> Tensor:
    """(N, D) view of embeddings given as (N, D) or (N, ...) (trailing dims flattened)."""
    if embeddings.ndim < 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    return embeddings.flatten(start_dim=1) if embeddings.ndim > 2 else embeddings


def distinct_labels(predictions: Tensor) -> int:
    """Number of distinct values in ``predictions`` (N,): |{ŷ_i}|."""
    return int(torch.unique(predictions.reshape(-1)).numel())


def top1(predictions: Tensor) -> tuple[int, float]:
    """The most frequent predicted label and its share: (argmax_c, max_c #{i : ŷ_i = c} / N);
    of labels tied for most frequent, the smallest."""
    flat = predictions.reshape(-1)
    if flat.numel() == 0:
        raise ValueError("the top label of no predictions is undefined")
    ids, counts = torch.unique(flat, return_counts=True)
    top = int(counts.argmax().item())
    return int(ids[top].item()), float(counts[top].item()) / flat.numel()


def top1_share(predictions: Tensor) -> float:
    """Share of the most frequent predicted label: max_c #{i : ŷ_i = c} / N."""
    return top1(predictions)[1]


def macro_f1(predictions: Tensor, labels: Tensor) -> float:
    """Unweighted mean over classes of F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c).

    The classes are those present in the gold labels or in the predictions, so a class
    predicted but never gold (F1 0) drags the mean down, and classes absent from both are
    not counted. Since 2·TP + FP + FN = #predicted_c + #gold_c, no class has a 0 denominator.
    """
    pred = predictions.reshape(-1)
    gold = labels.reshape(-1)
    if pred.shape != gold.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(gold.shape)} differ")
    if pred.numel() == 0:
        raise ValueError("macro_f1 needs at least one prediction")
    classes, inverse = torch.unique(torch.cat([pred, gold]), return_inverse=True)
    n, c = pred.numel(), classes.numel()
    pred_c, gold_c = inverse[:n], inverse[n:]
    tp = torch.bincount(pred_c[pred_c == gold_c], minlength=c).double()
    support = torch.bincount(pred_c, minlength=c) + torch.bincount(gold_c, minlength=c)
    return float((2 * tp / support.double()).mean().item())


def mean_norm(embeddings: Tensor) -> float:
    """Mean L2 norm of the rows of ``embeddings`` (N, D): (1/N) Σ_i ‖x_i‖."""
    return float(_rows(embeddings).double().norm(dim=1).mean().item())


def max_pairwise_distance(embeddings: Tensor, chunk: int = 1024) -> float:
    """Diameter of the point set: max_{i<j} ‖x_i − x_j‖ for ``embeddings`` (N, D), N ≥ 2.

    Exhaustive over all pairs in row blocks of ``chunk`` against the rows after them (the
    upper triangle, O(N²·D) flops, O(chunk·N) memory) with ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b on
    float32 data centred in float64 first (distances are translation invariant; centring
    removes the cancellation that a common offset, as in a collapse, would cause). The
    maximising pair's distance is then recomputed directly in float64, so the result is that
    pair's exact distance; it can differ from the true maximum only when another pair is
    within float32 rounding of it (≈1e-6 of the spread).
    """
    x = _rows(embeddings)
    n = x.shape[0]
    if n < 2:
        raise ValueError("a pairwise distance needs at least two embeddings")
    exact = x.double()
    centred = (exact - exact.mean(dim=0)).float()
    sq = (centred * centred).sum(dim=1)
    best, best_i, best_j = -math.inf, 0, 1
    for start in range(0, n, chunk):
        block = centred[start : start + chunk]
        # ‖b_j‖² − 2 a_i·b_j in one fused GEMM; ‖a_i‖² is added after the row maximum
        partial = torch.addmm(sq[None, start:], block, centred[start:].T, alpha=-2.0)
        row_max, col = partial.max(dim=1)
        value, row = (row_max + sq[start : start + chunk]).max(dim=0)
        if value.item() > best:
            best = value.item()
            best_i, best_j = start + int(row.item()), start + int(col[row].item())
    return float((exact[best_i] - exact[best_j]).norm().item())


@dataclass(frozen=True)
class Spread:
    """A point set's ``diameter`` (max pairwise L2) and ``scale`` (mean L2 norm)."""

    diameter: float
    scale: float

    @property
    def ratio(self) -> float:
        """diameter / scale, the collapse ratio (0 for all-zero embeddings)."""
        return self.diameter / self.scale if self.scale > 0 else 0.0


def spread(embeddings: Tensor, chunk: int = 1024) -> Spread:
    """:func:`max_pairwise_distance` and :func:`mean_norm` of ``embeddings`` (N, D), N ≥ 2."""
    return Spread(max_pairwise_distance(embeddings, chunk), mean_norm(embeddings))


def collapse_ratio(embeddings: Tensor, chunk: int = 1024) -> float:
    """max_{i<j} ‖x_i − x_j‖ / mean_i ‖x_i‖: the point set's diameter in units of its scale.

    Scale-free, so it reads the same in any embedding norm. Seed 002's collapse is
    0.020 / 6.98 ≈ 0.0029; healthy encoders sit near 1 or above (iid Gaussian rows give ≈ √2
    plus a margin). All-zero embeddings (a dead encoder) give 0.
    """
    return spread(embeddings, chunk).ratio


def effective_rank(embeddings: Tensor) -> float:
    """RankMe: exp(−Σ_k p_k ln p_k) with p_k = σ_k / Σ_j σ_j over the singular values σ of
    ``embeddings`` (N, D) (uncentred, as in RankMe; terms with p_k = 0 contribute 0, no ε).

    Between 1 (one direction, a collapse) and min(N, D). σ comes from the eigenvalues of the
    smaller Gram matrix in float64 (σ_k = √λ_k), which is exact enough for the entropy and far
    cheaper than an SVD of the tall matrix. All-zero embeddings give 0.
    """
    x = _rows(embeddings).double()
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    sigma = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    total = sigma.sum()
    if total.item() == 0:
        return 0.0
    p = sigma / total
    return float(torch.exp(-torch.special.xlogy(p, p).sum()).item())


def cosine_knn_graph(embeddings: Tensor, k: int) -> Tensor:
    """Dense symmetric (N, N) weight matrix of the k-nearest-neighbour cosine graph.

    W_ij = max(cos(x_i, x_j), 0) when j is among i's k most cosine-similar rows or i among
    j's, else 0, with self-loops W_ii = 1 (the self-similarity). Zero rows have no direction;
    they are treated as one shared direction orthogonal to every other row, so a set of dead
    (all-zero) embeddings is one tight group rather than N isolated points.
    """
    x = _rows(embeddings).float()
    n = x.shape[0]
    norms = x.norm(dim=1, keepdim=True)
    zero = norms == 0
    unit = torch.cat([torch.where(zero, 0.0, x / norms.clamp_min(1e-30)), zero.float()], dim=1)
    gram = unit @ unit.T
    # a BLAS matmul need not be bitwise symmetric; averaging with the transpose makes it so
    sim = ((gram + gram.T) / 2).clamp_(0.0, 1.0)
    neighbours = min(k, n - 1)
    mask = torch.eye(n, dtype=torch.bool, device=x.device)
    if neighbours > 0:
        ranked = sim.masked_fill(mask, -1.0)
        idx = ranked.topk(neighbours, dim=1).indices
        knn = torch.zeros_like(mask).scatter_(1, idx, True)
        mask = mask | knn | knn.T
    weights = sim * mask
    weights.fill_diagonal_(1.0)
    return weights


def mcl(
    weights: Tensor,
    inflation: float,
    max_iter: int = 100,
    prune: float = 1e-5,
    tol: float = 1e-4,
) -> tuple[Tensor, int]:
    """Markov clustering (van Dongen 2000) of a non-negative (N, N) weight matrix.

    M ← column-normalised weights; repeat: expansion M ← M·M, inflation M ← M∘r (elementwise
    power ``inflation``), column-normalise, drop entries < ``prune`` and re-normalise; stop
    when every column is uniform over its support (max_j(max_i M_ij / Σ_i M_ij² − 1) <
    ``tol``, the MCL limit) or after ``max_iter`` rounds. Returns the final matrix and the
    number of rounds run.
    """
    m = weights.float()
    m = m / m.sum(dim=0, keepdim=True)
    for rounds in range(1, max_iter + 1):
        m = m @ m
        m.pow_(inflation)
        m.div_(m.sum(dim=0, keepdim=True))
        m.masked_fill_(m < prune, 0.0)
        m.div_(m.sum(dim=0, keepdim=True))
        chaos = (m.amax(dim=0) / (m * m).sum(dim=0) - 1.0).max()
        if chaos.item() < tol:
            return m, rounds
    return m, max_iter


def _components(adjacency: Tensor) -> int:
    """Connected components of the undirected graph with edges where ``adjacency`` is true."""
    n = adjacency.shape[0]
    label = torch.arange(n, device=adjacency.device)
    src, dst = (adjacency | adjacency.T).nonzero(as_tuple=True)
    while True:
        smaller = label.scatter_reduce(0, src, label[dst], reduce="amin")
        smaller = smaller[smaller]  # pointer jumping: follow the new label's own label
        if torch.equal(smaller, label):
            return int(torch.unique(label).numel())
        label = smaller


def mcl_clusters(
    embeddings: Tensor,
    inflation: float = 1.4,
    k: int = 10,
    max_points: int = 600,
    seed: int = 0,
    max_iter: int = 100,
) -> tuple[int, int, int]:
    """Number of MCL clusters of the rows of ``embeddings`` (N, D); with the points
    clustered and the MCL rounds run: ``(clusters, points, rounds)``.

    Graph: :func:`cosine_knn_graph` with ``k`` neighbours. Clusters: the connected groups of
    the MCL limit's support (each attractor with the nodes that flow to it; overlapping
    attractor systems merge). Past ``max_points`` rows, a uniform sample of ``max_points``
    rows (fixed ``seed``, so every rank agrees) is clustered: MCL at a coarse inflation lets
    a large cluster's columns fill up before they converge, so exact MCL on 10 000 points is
    a dense 10 000² iteration (minutes), while any pruning strong enough to keep it sparse
    fragments one big cluster into thousands. A cluster holding a small fraction of the rows
    can be missed by the sample; a collapse cannot be hidden by it.

    ``k`` = 10 is measured, not folklore: with 600 points, k = 5 split seed 002's collapse into
    3 "clusters", and k ≥ 30 merged iid random features (no structure, every row its own
    direction) into one.
    """
    x = _rows(embeddings)
    n = x.shape[0]
    if n == 0:
        raise ValueError("mcl_clusters needs at least one embedding")
    if n > max_points:
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(n, generator=generator)[:max_points].sort().values
        x = x[pick.to(x.device)]
    limit, rounds = mcl(cosine_knn_graph(x, k), inflation, max_iter=max_iter)
    return _components(limit > 0), x.shape[0], rounds
