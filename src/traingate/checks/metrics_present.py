"""INV-TRAIN-008 metric presence: every step hands the Guard every listed metric, finite.

Origin: a pretraining loop whose per-step record silently lost metrics (a grad norm, an lr,
a throughput) while its gates kept reporting green, because a check whose observation is
absent is not evaluated on that step. This kind turns the absence itself into the finding:
it is evaluated at every step (it needs nothing to run), and a step lacking a listed
observation, or carrying ``None``, NaN or inf for it, is a violation, not "not evaluated".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field, field_validator

from traingate.checks.base import (
    CheckParams,
    LatestCheck,
    Observation,
    register,
    scalar_names,
)
from traingate.checks.decision import Decision, Quick


class MetricsPresentParams(CheckParams):
    """``observations`` names the scalar metrics every step must carry, finite."""

    observations: list[str] = Field(min_length=1)

    _scalars = field_validator("observations")(scalar_names)


def check_metrics_present(
    *, observed: Mapping[str, float | None], params: MetricsPresentParams
) -> Decision:
    """Decide one step: every name in ``params.observations`` is in ``observed``, not
    ``None``, and finite. ``observed`` is the count of those that are not (limit 0);
    ``metrics["missing"]`` and ``metrics["non_finite"]`` count each sort."""
    missing, bad, present = presence(observed, params)
    failed = len(missing) + len(bad)
    metrics = {"missing": float(len(missing)), "non_finite": float(len(bad))}
    if present:
        return Decision(
            ok=True,
            observed=0.0,
            limit=0.0,
            comparison="<=",
            detail=f"present and finite: {', '.join(params.observations)}",
            metrics=metrics,
        )
    parts = [f"missing {', '.join(missing)}"] if missing else []
    parts += [f"non-finite {', '.join(f'{n}={observed[n]!r}' for n in bad)}"] if bad else []
    return Decision(
        ok=False,
        observed=float(failed),
        limit=0.0,
        comparison="<=",
        detail=f"{'; '.join(parts)} (every step must carry {', '.join(params.observations)})",
        hint=f"the loop must hand guard.step {', '.join(missing + bad)} at every step, as a "
        f"finite number (e.g. guard.step(step, loss=..., {(missing + bad)[0]}=...))",
        metrics=metrics,
    )


def presence(
    observed: Mapping[str, float | None], params: MetricsPresentParams
) -> tuple[list[str], list[str], bool]:
    """The listed names ``observed`` lacks (or holds as ``None``), those it holds non-finite,
    and whether every one is present and finite."""
    missing = [n for n in params.observations if observed.get(n) is None]
    bad = [
        n
        for n in params.observations
        if (v := observed.get(n)) is not None and not math.isfinite(v)
    ]
    return missing, bad, len(missing) + len(bad) == 0


@dataclass
class PresenceState:
    """The latest step's listed observations (``None``: absent), or ``None`` before the
    first step."""

    last: dict[str, float | None] | None = None


@register
class MetricsPresent(LatestCheck[MetricsPresentParams]):
    """Applies :func:`check_metrics_present` to every step (no history needed)."""

    kind = "metrics_present"
    params_model = MetricsPresentParams
    points = frozenset({"step"})
    summary = "every listed metric is present and finite at every step"
    state = PresenceState
    values: PresenceState

    def observes(self) -> frozenset[str]:
        """Nothing: the Guard must evaluate it at every step, above all one lacking a metric."""
        return frozenset()

    def demands(self) -> frozenset[str]:
        """The listed observations: a loop that never supplies one fails every step."""
        return frozenset(self.params.observations)

    def update(self, observation: Observation) -> None:
        self._fold(observation)
        self.refresh()

    def _fold(self, observation: Observation) -> dict[str, float | None]:
        """Keep the step's listed observations (``None``: absent) as the latest."""
        last = self.values.last = {
            n: None if (v := observation.get(n)) is None else float(v)
            for n in self.params.observations
        }
        return last

    def decide_on(self, inputs: dict[str, float | None]) -> Decision:
        return check_metrics_present(observed=inputs, params=self.params)

    def observe(self, observation: Observation) -> Quick | None:
        """Every listed metric present and finite (:func:`presence`): a pass at 0 missing."""
        last = self._fold(observation)
        if not presence(last, self.params)[2]:
            self.refresh()
            return None
        return self.passed(0.0, 0.0, "<=", last)
