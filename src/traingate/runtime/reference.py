"""The reference run a ``reproducible`` invariant compares this run with (``--reference``).

A reference is a run dir: its ``metrics.parquet`` (what the Guard recorded, long form) gives
each step metric's values in step order, and its ``config.json`` / ``verdict.json``, when
present, say which seed and contract text produced them (recorded in this run's start
event). ``contracts audit --reference LOG`` builds one from a step log instead. Torch-free;
pyarrow is imported only when a run dir is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traingate.checks.reproducible import REFERENCE_STEPS, RUN_STEPS
from traingate.runtime.binding import Tracked
from traingate.runtime.evidence import METRICS, VERDICT, MetricsBuffer, RunDirError
from traingate.runtime.planning import Unsupplied

__all__ = [
    "REFERENCE_STEPS",
    "RUN_STEPS",
    "SUPPLIED",
    "Reference",
    "read_reference",
    "reference_of",
    "reference_steps",
    "step_series",
    "unreferenced",
]

CONFIG = "config.json"
NEEDS = "a reference run (--reference RUN, Guard(reference=...))"  # what the message names
# the observations a Guard hands its final point itself (when given a reference)
SUPPLIED = frozenset({RUN_STEPS, REFERENCE_STEPS})


@dataclass(frozen=True)
class Reference:
    """A reference run's step values (name → values in step order) and where they came
    from: ``source`` (a run dir or a log), the ``seed`` and ``contract_sha256`` it recorded."""

    source: Path
    values: dict[str, list[float]]
    seed: int | None = None
    contract_sha256: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What the start event records of the reference: path, seed, contract digests, steps."""
        return {
            "path": str(self.source),
            "seed": self.seed,
            "contract_sha256": self.contract_sha256,
            "steps": max((len(v) for v in self.values.values()), default=0),
        }


def step_series(
    points: Sequence[str],
    steps: Sequence[int | None],
    names: Sequence[str],
    values: Sequence[float],
) -> dict[str, list[float]]:
    """Long-form metric rows as name → the step rows' values ordered by step (a step
    recorded twice keeps its last value; rows of other points are ignored)."""
    by_name: dict[str, dict[int, float]] = {}
    for point, step, name, value in zip(points, steps, names, values, strict=True):
        if point == "step" and step is not None:
            by_name.setdefault(name, {})[int(step)] = float(value)
    return {name: [v for _, v in sorted(rows.items())] for name, rows in by_name.items()}


def buffer_series(buffer: MetricsBuffer) -> dict[str, list[float]]:
    """:func:`step_series` of what a Guard recorded so far (its ``metrics``)."""
    return step_series(buffer.point, buffer.step, buffer.name, buffer.value)


def read_reference(run_dir: str | Path) -> Reference:
    """The reference run in ``run_dir``; RunDirError (naming the path) when the dir, its
    ``metrics.parquet`` or any step metric in it is missing or unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such reference run dir")
    if not path.is_file():
        raise RunDirError(f"{path}: missing: the reference run recorded no metrics")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["point", "step", "name", "value"]).to_pydict()
    except (OSError, ValueError, KeyError) as exc:
        raise RunDirError(f"{path}: unreadable as the reference run's metrics ({exc})") from None
    series = step_series(table["point"], table["step"], table["name"], table["value"])
    if not series:
        raise RunDirError(f"{path}: holds no step metrics to compare with")
    config, verdict = _json(run_dir / CONFIG), _json(run_dir / VERDICT)
    seed = config.get("seed")
    digests = verdict.get("contract_sha256")
    return Reference(
        run_dir,
        series,
        seed=seed if isinstance(seed, int) else None,
        contract_sha256=dict(digests) if isinstance(digests, Mapping) else {},
    )


def reference_of(reference: str | Path | Reference | None) -> Reference | None:
    """A Guard's ``reference=`` argument as a :class:`Reference` (a path is read as a run dir)."""
    if reference is None or isinstance(reference, Reference):
        return reference
    return read_reference(reference)


def reference_steps(
    reference: Reference | None, metrics: MetricsBuffer
) -> dict[str, dict[str, list[float]]]:
    """The final point's ``run_steps`` (from a Guard's ``metrics``) and ``reference_steps``;
    nothing without a reference, so ``reproducible`` invariants stay unevaluated."""
    if reference is None:
        return {}
    return {RUN_STEPS: buffer_series(metrics), REFERENCE_STEPS: reference.values}


def _json(path: Path) -> dict[str, Any]:
    """A run dir's JSON file as a dict; empty when absent or unreadable (identity only)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unreferenced(tracked: Iterable[Tracked]) -> list[Unsupplied]:
    """The invariants of ``tracked`` that need a reference run's values (in a Guard given
    none): named at start as needing ``--reference``, and not evaluated."""
    return [
        Unsupplied(t.invariant.id, t.invariant.check, (NEEDS,))
        for t in tracked
        if REFERENCE_STEPS in t.needs
    ]
