"""The summary lines the step-time benchmarks print, shared so their outputs compare."""

from __future__ import annotations

import statistics


def print_step_times(variants: list[tuple[str, list[float]]]) -> None:
    """One line per variant: the median step time and its quartiles, in milliseconds."""
    width = max(len(name) for name, _ in variants)
    for name, samples in variants:
        q1, median, q3 = statistics.quantiles(samples, n=4)
        print(
            f"step time {name:<{width}}: median {median * 1e3:.3f} ms "
            f"(quartiles {q1 * 1e3:.3f} - {q3 * 1e3:.3f} ms, {len(samples)} samples)"
        )
