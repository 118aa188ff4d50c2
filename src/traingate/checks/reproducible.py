"""INV-REPRO-001 seeded reproducibility: the first N steps match a reference run's.

The upstream rule: two runs with one seed give per-step loss and grad norm within 1e-6 for
the first N steps (and runs with different seeds differ, which the project's own tests
show: the seed is plumbed at all). Decided once, at the final point, on the step values of
this run (``run_steps``) and of the reference run (``reference_steps``) that the Guard
hands over when it was given a reference (``Guard(reference=RUN_DIR)``, ``--reference``).

A run or reference with fewer than N step values, or without an observation, is a
violation, never a pass: "not enough to compare" cannot be called "reproduced". A NaN (or
an infinity) is never within tolerance of anything, another NaN included: the difference
of two NaNs is NaN, and a run that produced one is not called reproduced (INV-TRAIN-001
aborts it anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pydantic import Field, field_validator

from traingate.checks.base import CheckParams, LatestCheck, Observation, register, unique_names
from traingate.checks.decision import CheckContext, Decision

RUN_STEPS = "run_steps"  # observation: this run's step values, name → values in step order
REFERENCE_STEPS = "reference_steps"  # observation: the reference run's, the same shape

HINT = (
    "not reproduced: check that the seed reaches every RNG (model init, dropout, data "
    "order/shuffling, workers), that kernels are deterministic "
    "(torch.use_deterministic_algorithms(True), CUBLAS_WORKSPACE_CONFIG, one thread count), "
    "and that both runs read the same data in the same order with the same settings"
)


SHORT = "run both for at least the compared steps, logging the same metrics"


class ReproducibleParams(CheckParams):
    """Compare ``observations`` over the first ``steps`` steps; ``|diff| ≤ tolerance``
    passes (exactly the tolerance too; absolute, not relative)."""

    observations: list[str] = Field(default_factory=lambda: ["loss", "grad_norm"], min_length=1)
    steps: int = Field(default=20, ge=1)
    tolerance: float = Field(default=1e-6, ge=0)

    # each observation once: a name listed twice is a mistake, not a heavier weight
    _listed_once = field_validator("observations")(unique_names)


def check_reproducible(
    *,
    run: Mapping[str, Sequence[float]],
    reference: Mapping[str, Sequence[float]],
    params: ReproducibleParams,
    context: CheckContext,
) -> Decision:
    """Decide whether ``run`` reproduces ``reference`` over the first ``params.steps`` steps.

    Both map an observation name to its values in step order (the first is step 0). The
    decision fails on the first observation either lacks or holds fewer than ``steps``
    values of (``observed``: how many it holds, ``limit``: ``steps``), else on the first
    step (then observation, in ``params.observations``' order) whose absolute difference
    exceeds ``tolerance`` or is NaN; it passes with the largest difference as ``observed``.
    """
    del context  # the tolerance is absolute: no regime or run parameter enters it
    n = params.steps
    metrics = {"steps": float(n), "compared": 0.0}
    for name in params.observations:
        for side, values in (
            ("this run", run.get(name)),
            ("the reference run", reference.get(name)),
        ):
            have = 0 if values is None else len(values)
            if have < n:
                lacks = "records no" if values is None else f"records {have} step value(s) of"
                detail = (
                    f"{side} {lacks} {name}; {n} are compared: not enough to call it reproduced"
                )
                return Decision(False, float(have), float(n), ">=", detail, SHORT, metrics=metrics)
    diffs = [
        (abs(float(run[name][i]) - float(reference[name][i])), i, name)
        for i in range(n)
        for name in params.observations
    ]
    tolerance = params.tolerance
    bad = next((d for d in diffs if not d[0] <= tolerance), None)  # NaN is never within it
    if bad is None:
        worst = max(d for d, _, _ in diffs)
        detail = (
            f"reproduced: {', '.join(params.observations)} of the first {n} steps within "
            f"{tolerance:.3g} (largest |diff| {worst:.3g})"
        )
        return Decision(
            True, worst, tolerance, "<=", detail, metrics={**metrics, "compared": float(n)}
        )
    diff, i, name = bad
    detail = (
        f"step {i}: {name} {float(run[name][i])!r} here, {float(reference[name][i])!r} in the "
        f"reference run (|diff| {diff:.3g} > tolerance {tolerance:.3g})"
    )
    return Decision(
        False, diff, tolerance, "<=", detail, HINT, metrics={**metrics, "compared": float(i)}
    )


class ReproInputs(NamedTuple):
    """What the decision was made on: both runs' step values (see :func:`check_reproducible`)."""

    run: dict[str, list[float]]
    reference: dict[str, list[float]]


@dataclass
class ReproducibleState:
    """The inputs of the final point's decision (``None`` before it)."""

    last: ReproInputs | None = None


@register
class Reproducible(LatestCheck[ReproducibleParams]):
    """Applies :func:`check_reproducible` at the final point to this run's step values and
    the reference run's; without a reference the Guard hands neither, so it is not evaluated
    (and named at start as needing one)."""

    kind = "reproducible"
    params_model = ReproducibleParams
    points = frozenset({"final"})
    requires = frozenset({RUN_STEPS, REFERENCE_STEPS})
    summary = "the first N steps' loss / grad_norm match a reference run's within tolerance"
    state = ReproducibleState
    decision = staticmethod(check_reproducible)
    values: ReproducibleState

    def update(self, observation: Observation) -> None:
        # keep only what is compared: the first ``steps`` values of each listed observation
        names, n = set(self.params.observations), self.params.steps
        self.values.last = ReproInputs(
            *(
                {k: [float(v) for v in vs[:n]] for k, vs in observation[key].items() if k in names}
                for key in (RUN_STEPS, REFERENCE_STEPS)
            )
        )
        self.refresh()
