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
    x = _rows(embeddings)
    return float(torch.linalg.vector_norm(x, dim=1, dtype=torch.float64).mean().item())


def max_pairwise_distance(embeddings: Tensor, chunk: int = 1024) -> float:
    """Diameter of the point set: max_{i<j} ‖x_i − x_j‖ for ``embeddings`` (N, D), N ≥ 2.

    Exact (see :func:`spread` with no ``limit``): the longest pair's distance, recomputed
    directly in float64. O(N·D) when few rows lie near the rim of the set; O(N²·D) at worst
    (every row about equally far from the centroid, as iid high-dimensional noise is).
    """
    return spread(embeddings, chunk).diameter


@dataclass(frozen=True)
class Spread:
    """A point set's max pairwise L2 and ``scale`` (mean L2 norm).

    ``diameter`` is the longest pair found, so a lower bound on the max pairwise L2, and
    ``upper`` a proven upper bound on it; ``upper`` is None when ``diameter`` is exact.
    """

    diameter: float
    scale: float
    upper: float | None = None

    @property
    def exact(self) -> bool:
        return self.upper is None

    @property
    def ratio(self) -> float:
        """diameter / scale, the collapse ratio (a lower bound on it unless ``exact``; 0 for
        all-zero embeddings, and for a NaN scale, as before)."""
        return self.diameter / self.scale if self.scale > 0 else 0.0

    @property
    def ratio_upper(self) -> float:
        """upper / scale, an upper bound on the collapse ratio (``ratio`` when ``exact``)."""
        if self.upper is None:
            return self.ratio
        return self.upper / self.scale if self.scale > 0 else 0.0


def spread(embeddings: Tensor, chunk: int = 1024, limit: float | None = None) -> Spread:
    """Max pairwise L2 and mean L2 norm of ``embeddings`` (N, D), N ≥ 2.

    On rows centred at their mean c (distances are translation invariant, and centring
    removes the cancellation a common offset, as in a collapse, would cause), with r_i =
    ‖x_i − c‖: every pair has ‖x_i − x_j‖ ≤ r_i + r_j, so the diameter lies in [longest pair
    found, r₍₁₎ + r₍₂₎], an interval at most a factor 2 wide (the row farthest from the
    farthest-out row is at least r₍₁₎ from it, since c is the rows' mean). Found pairs come
    from farthest-point sweeps, O(N·D) each: from the row farthest from c, the row farthest
    from it, and so on. r is computed in float32 for bf16/fp16/fp32 rows (which float32
    holds exactly), float64 otherwise, and the bounds allow for its rounding; pair lengths
    are recomputed directly, ‖x_i − x_j‖ in float64, as the exhaustive search always did.

    With ``limit`` (a collapse ratio), the search stops as soon as it is certain which side
    of ``limit`` the ratio diameter / scale lies on: ``ratio ≥ limit`` when a pair that long
    is found, ``ratio_upper < limit`` when none can be. Only when the bounds straddle
    ``limit`` does it search exhaustively, and then only among the rows with r_i + r₍₁₎ ≥
    limit·scale, each against the rows that can reach the limit with it, stopping at the
    first pair that does. Without ``limit`` the search finds the exact diameter the same way,
    pruning against the longest pair so far. The exhaustive part is O(M²·D) for the M rows
    that survive pruning: small for a collapse with a few far-out rows, all N for a shell of
    rows about equally far from c whose ratio is within a factor 2 of ``limit``.

    Non-finite embeddings have no diameter: NaN (ratio NaN, or 0 for a NaN scale as before).
    """
    x = _rows(embeddings)
    n, dim = x.shape[0], x.shape[1]
    if n < 2:
        raise ValueError("a pairwise distance needs at least two embeddings")
    # one float64 pass in row blocks: the norms (bitwise mean_norm's) and the column sums
    norms, total = [], torch.zeros(dim, dtype=torch.float64, device=x.device)
    for s in range(0, n, _BLOCK):
        block = x[s : s + _BLOCK].double()
        norms.append(block.norm(dim=1))
        total += block.sum(dim=0)
    scale = float(torch.cat(norms).mean().item())
    if not math.isfinite(scale):
        return Spread(math.nan, scale, math.nan)
    if scale == 0.0:
        return Spread(0.0, 0.0)
    # float32 holds bf16/fp16/fp32 rows exactly; anything else is worked on in float64
    work = torch.float32 if x.dtype in (torch.float32, torch.bfloat16, torch.float16) else None
    work = work or torch.float64
    centre = (total / n).to(work)
    radius = torch.cat(
        [(x[s : s + _BLOCK].to(work) - centre).norm(dim=1) for s in range(0, n, _BLOCK)]
    )
    # rounding of a difference and a norm over ``dim`` coordinates in ``work``
    slack = 1.0 + (dim + 8) * torch.finfo(work).eps * 2
    best = _swept(x, work, centre, radius)
    upper = float(radius.double().topk(2).values.sum().item()) * slack
    if limit is not None and (best / scale >= limit or not upper / scale >= limit):
        return Spread(best, scale, upper)  # certain (a NaN limit fails either way)
    return _searched(x, radius, scale, chunk, limit, best, upper, slack)


_BLOCK = 8192  # rows per pass over the embeddings: bounded temporaries, no (N, D) copy


def _length(x: Tensor, i: Tensor | int, j: Tensor | int) -> float:
    """‖x_i − x_j‖ in float64, computed as the exhaustive search always did."""
    return float((x[i].double() - x[j].double()).norm().item())


def _swept(x: Tensor, work: torch.dtype, centre: Tensor, radius: Tensor, sweeps: int = 4) -> float:
    """The length of the longest of ``sweeps`` farthest-point pairs (see :func:`spread`)."""
    squares = radius * radius
    rows = x.to(work)
    far = radius.argmax()
    ends = [far]
    for _ in range(sweeps):
        # ‖u_j − u_f‖² = r_j² + r_f² − 2 u_j·u_f with u = x − c, u_j·u_f = x_j·u_f − c·u_f;
        # only the argmax over j is used, so r_f² and c·u_f are left out
        far = torch.addmv(squares, rows, rows[far] - centre, alpha=-2.0).argmax()
        ends.append(far)
    idx = torch.stack(ends)
    lengths = (x[idx[:-1]].double() - x[idx[1:]].double()).norm(dim=1)
    k = lengths.argmax()
    return _length(x, idx[k], idx[k + 1])


def _searched(
    x: Tensor,
    radius: Tensor,
    scale: float,
    chunk: int,
    limit: float | None,
    best: float,
    upper: float,
    slack: float,
) -> Spread:
    """The exhaustive part of :func:`spread`: row blocks in decreasing r, each against the
    later rows that can still reach the target (``limit``·scale, else the longest pair so
    far), on the float64 Gram identity ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b of the centred rows; each
    block's longest pair is recomputed directly. One host synchronisation per block."""
    target = best if limit is None else limit * scale
    order = radius.argsort(descending=True)
    reach = radius[order].double()
    r = reach.tolist()
    live = int(((reach + r[0]) * slack >= target).sum().item())  # rows that can reach it
    rows = order[:live]
    exact = x[rows].double()
    u = exact - exact.mean(dim=0)  # any centre will do for the Gram identity
    squares = (u * u).sum(dim=1)
    reach = reach[:live]
    # the longest pair a skipped row could form, and the largest Gram value seen (bounds)
    skipped = r[live] + r[0] if live < len(r) else 0.0
    examined, start = 0.0, 0
    while start < live:
        stop = min(start + chunk, live)
        width = int(((reach + r[start]) * slack >= target).sum().item())
        if width < len(r):
            skipped = max(skipped, r[start] + r[width])
        if width <= start:
            break
        block = torch.addmm(squares[None, start:width], u[start:stop], u[start:width].T, alpha=-2)
        block += squares[start:stop, None]
        value, flat = block.flatten().max(dim=0)
        a, b = divmod(int(flat.item()), width - start)
        examined = max(examined, float(value.item()))
        length = _length(exact, start + a, start + b)
        if length > best:
            best = length
            if limit is None:
                target = best
            elif best / scale >= limit:
                return Spread(best, scale, upper)
        start = stop
    if limit is None:
        return Spread(best, scale)  # every pair skipped was shorter than a pair found
    # a Gram value carries a float64 rounding of about dim·2⁻⁵²·(‖a‖² + ‖b‖²); ‖u‖ ≤ 2·r₍₁₎
    eps64 = (u.shape[1] + 8) * 2.0**-51
    proven = math.sqrt(max(examined, 0.0) + 16 * eps64 * r[0] ** 2) * (1 + eps64)
    return Spread(best, scale, min(upper, max(best, proven, skipped * slack)))


def collapse_ratio(embeddings: Tensor, chunk: int = 1024) -> float:
    """max_{i<j} ‖x_i − x_j‖ / mean_i ‖x_i‖: the point set's diameter in units of its scale.

    Scale-free, so it reads the same in any embedding norm. Seed 002's collapse is
    0.020 / 6.98 ≈ 0.0029; healthy encoders sit near 1 or above (iid Gaussian rows give ≈ √2
    plus a margin). All-zero embeddings (a dead encoder) give 0. Exact, so O(N²·D) at worst;
    the collapse check asks :func:`spread` for the side of its limit instead, O(N·D) there.
    """
    return spread(embeddings, chunk).ratio


def effective_rank(embeddings: Tensor) -> float:
    """RankMe: exp(−Σ_k p_k ln p_k) with p_k = σ_k / Σ_j σ_j over the singular values σ of
    ``embeddings`` (N, D) (uncentred, as in RankMe; terms with p_k = 0 contribute 0, no ε).

    Between 1 (one direction, a collapse) and min(N, D). σ comes from the eigenvalues of the
    smaller Gram matrix in float64 (σ_k = √λ_k), which is exact enough for the entropy and far
    cheaper than an SVD of the tall matrix; the D × D one is summed over row blocks, one pass
    with no (N, D) float64 copy. All-zero embeddings give 0.
    """
    x = _rows(embeddings)
    n, dim = x.shape[0], x.shape[1]
    if n >= dim:  # Σ over row blocks of X_bᵀX_b: one pass, no (N, D) float64 copy
        gram = torch.zeros(dim, dim, dtype=torch.float64, device=x.device)
        for s in range(0, n, _BLOCK):
            block = x[s : s + _BLOCK].double()
            gram.addmm_(block.T, block)
    else:
        rows = x.double()
        gram = rows @ rows.T
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
