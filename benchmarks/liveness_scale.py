"""Liveness metrics at validation scale: 10 000 × 384 embeddings and 10 000 predictions.

Times every metric behind the liveness kinds (distinct labels, macro F1, top-1 share,
collapse ratio, effective rank, MCL clusters) on three embedding sets: seed 002's collapse,
well-separated Gaussian clusters, and iid random features. Prints the machine first, then
per-metric medians over ``--repeats`` runs (wall and process CPU time) and the total::

    PYTHONPATH=src python benchmarks/liveness_scale.py --repeats 5

CPU time is reported beside wall time because a shared machine's wall time measures its
neighbours too; the target is a total of ≤ 2 s wall on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from traingate.metrics.liveness import (
    collapse_ratio,
    distinct_labels,
    effective_rank,
    macro_f1,
    mcl_clusters,
    top1_share,
)


def datasets(n: int, dim: int) -> dict[str, torch.Tensor]:
    """Seed 002's collapse (norm 6.98, max pairwise L2 ≤ 0.020), 20 Gaussian clusters, iid."""
    g = torch.Generator().manual_seed(0)
    common = torch.randn(dim, generator=g)
    noise = torch.randn(n, dim, generator=g)
    noise = noise / noise.norm(dim=1, keepdim=True) * 0.010 * torch.rand(n, 1, generator=g)
    centres = torch.randn(20, dim, generator=g)
    clustered = centres[torch.arange(n) % 20] + 0.3 * torch.randn(n, dim, generator=g)
    return {
        "collapse": common / common.norm() * 6.98 + noise,
        "clusters": clustered,
        "random": torch.randn(n, dim, generator=g),
    }


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus = [], []
    result: object = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()}")
    print(
        f"cpus: {os.cpu_count()} | torch {torch.__version__} | threads {torch.get_num_threads()}"
        f" | load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 82, (args.n,), generator=g)
    predictions = torch.where(torch.rand(args.n, generator=g) < 0.7, labels, labels.roll(1))
    collapse_ratio(torch.randn(16, 4))  # warm up the kernels outside the timings
    effective_rank(torch.randn(16, 4))
    mcl_clusters(torch.randn(16, 4))

    for name, embeddings in datasets(args.n, args.dim).items():
        metrics: dict[str, Callable[[], object]] = {
            "distinct_labels": lambda: distinct_labels(predictions),
            "macro_f1": lambda: macro_f1(predictions, labels),
            "top1_share": lambda: top1_share(predictions),
            "collapse_ratio": lambda e=embeddings: collapse_ratio(e),
            "effective_rank": lambda e=embeddings: effective_rank(e),
            "mcl_clusters": lambda e=embeddings: mcl_clusters(e),
        }
        total_wall = total_cpu = 0.0
        print(f"\n{name}: {args.n} × {args.dim} embeddings, {args.n} predictions")
        for metric, fn in metrics.items():
            wall, cpu, result = timed(fn, args.repeats)
            total_wall += wall
            total_cpu += cpu
            shown = f"{result:.4g}" if isinstance(result, float) else str(result)
            print(f"  {metric:16s} {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms cpu  → {shown}")
        print(f"  {'total':16s} {total_wall * 1000:8.1f} ms wall {total_cpu * 1000:8.1f} ms cpu")


if __name__ == "__main__":
    main()
