"""Liveness at scale (issue 12): the five liveness checks on 10k, 30k and 100k × 384.

Times, per size and per embedding set (seed 002's collapse, well-separated Gaussian
clusters, iid random features), each registered liveness kind end to end as the Guard runs it
(``update`` with one validation's tensors, then ``verdict``, on the shipped contract's
params), plus ``effective_rank`` on its own (the collapse check computes it beside the
spread, so ``embedding_collapse − effective_rank`` is the spread's cost). Prints the machine
and load average first, then per-row medians over ``--repeats`` runs (wall and process CPU
time), a total per set, and the headline last: the worst set's total at the largest size::

    PYTHONPATH=src python benchmarks/liveness_scale.py --repeats 3

CPU time is reported beside wall time because a shared machine's wall time measures its
neighbours too; the target is a total of ≤ 2 s wall at 100 000 rows on an idle 2-core
machine, growing no faster than N log N.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from traingate.checks import REGISTRY, CheckContext
from traingate.contract.regime import Finetune
from traingate.contract.shipped import invariant
from traingate.metrics.liveness import effective_rank

KINDS = {
    "INV-LIVE-001": "distinct_predictions",
    "INV-LIVE-002": "macro_f1",
    "INV-LIVE-003": "prediction_share",
    "INV-LIVE-004": "embedding_collapse",
    "INV-LIVE-005": "embedding_clusters",
}


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


def check_verdict(inv_id: str, observation: dict[str, object]) -> Callable[[], object]:
    """One validation through the shipped invariant's check: update, then verdict."""
    inv = invariant(inv_id)

    def run() -> object:
        check = REGISTRY[inv.check](inv.params, CheckContext(Finetune()))
        check.update(observation)
        decision = check.verdict()
        return None if decision is None else (decision.ok, decision.observed)

    return run


def shown(result: object) -> str:
    if isinstance(result, tuple):
        ok, observed = result
        return f"{'pass' if ok else 'FAIL'} {observed:.4g}"
    return f"{result:.4g}" if isinstance(result, float) else str(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()}")
    print(
        f"cpus: {os.cpu_count()} | torch {torch.__version__} | threads {torch.get_num_threads()}"
        f" | load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    warm = {"predictions": torch.arange(16) % 3, "labels": torch.arange(16) % 3}
    for inv_id in KINDS:  # warm up the kernels outside the timings
        check_verdict(inv_id, {**warm, "embeddings": torch.randn(16, 4)})()

    totals: dict[tuple[int, str], float] = {}
    for n in args.sizes:
        g = torch.Generator().manual_seed(1)
        labels = torch.randint(0, 82, (n,), generator=g)
        predictions = torch.where(torch.rand(n, generator=g) < 0.7, labels, labels.roll(1))
        for name, embeddings in datasets(n, args.dim).items():
            obs = {"predictions": predictions, "labels": labels, "embeddings": embeddings}
            rows: dict[str, Callable[[], object]] = {
                kind: check_verdict(inv_id, obs) for inv_id, kind in KINDS.items()
            }
            total_wall = total_cpu = 0.0
            print(f"\n{name}: {n} × {args.dim} embeddings, {n} predictions")
            for row, fn in rows.items():
                wall, cpu, result = timed(fn, args.repeats)
                total_wall += wall
                total_cpu += cpu
                print(
                    f"  {row:22s} {wall * 1000:9.1f} ms wall {cpu * 1000:9.1f} ms cpu  → "
                    f"{shown(result)}"
                )
            wall, cpu, result = timed(lambda e=embeddings: effective_rank(e), args.repeats)
            print(
                f"  {'(of which rank)':22s} {wall * 1000:9.1f} ms wall {cpu * 1000:9.1f} ms cpu"
                f"  → {shown(result)}"
            )
            print(
                f"  {'total (5 checks)':22s} {total_wall * 1000:9.1f} ms wall "
                f"{total_cpu * 1000:9.1f} ms cpu"
            )
            totals[n, name] = total_wall

    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    largest = max(args.sizes)
    worst = max(
        (name for size, name in totals if size == largest), key=lambda s: totals[largest, s]
    )
    print(
        f"headline: all five liveness checks at {largest} × {args.dim}: "
        f"{totals[largest, worst]:.2f} s wall (worst set: {worst}; target ≤ 2 s)"
    )


if __name__ == "__main__":
    main()
