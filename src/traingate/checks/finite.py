"""INV-TRAIN-001 finiteness: the loss and gradient norm of a step must be finite.

Megatron-LM's ``check_for_nan_in_loss_and_grad`` and Lightning's ``check_finite``: a NaN or
inf reaching ``optimizer.step()`` poisons every weight, so the Guard runs this check before
the step. At ``validation`` the same kind checks ``val_loss``.

Under a fp16 ``GradScaler`` an inf gradient norm on an overflow step is routine (the scaler
skips that step and lowers its scale): such a contract lists only ``loss``, or the loop does
not hand ``grad_norm`` for steps the scaler skips.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator

from traingate.checks.base import (
    CheckParams,
    Observation,
    ScalarCheck,
    non_finite,
    present_scalars,
    register,
    unique_names,
)
from traingate.checks.decision import Decision, Quick


class FiniteParams(CheckParams):
    """``observations`` names the scalar observations that must be finite when present."""

    observations: list[str] = Field(default_factory=lambda: ["loss", "grad_norm"], min_length=1)

    _unique = field_validator("observations")(unique_names)


def check_finite(*, observed: Mapping[str, float | None], params: FiniteParams) -> Decision | None:
    """Decide whether every observation in ``params.observations`` that ``observed`` carries
    is finite.

    Names absent from ``observed`` are skipped (e.g. no ``grad_norm`` on a step that did not
    compute it); ``None`` when none of them is present, since nothing was checked.
    """
    checked = present_scalars(observed, params.observations)
    if not checked:
        return None
    listing = ", ".join(f"{n}={v:.6g}" for n, v in checked.items())
    bad = non_finite(checked)
    if bad:
        return Decision(
            ok=False,
            observed=checked[bad[0]],
            limit=None,
            comparison="finite",
            detail=f"non-finite {', '.join(bad)} ({listing})",
            hint="a NaN/inf reached the optimizer step: lower the lr, check the batch for bad "
            "values, and keep loss reductions in fp32",
            metrics=checked,
        )
    first = next(iter(checked))
    return Decision(
        ok=True,
        observed=checked[first],
        limit=None,
        comparison="finite",
        detail=f"finite: {listing}",
        metrics=checked,
    )


@register
class Finite(ScalarCheck[FiniteParams]):
    """Applies :func:`check_finite` to the latest observation (no history needed)."""

    kind = "finite"
    params_model = FiniteParams
    points = frozenset({"step", "validation", "final"})
    summary = "loss / grad_norm (or the named observations) are finite"

    def observes_any(self) -> frozenset[str]:
        """The observations it checks: those present are checked, at least one must be."""
        return frozenset(self.params.observations)

    def scalar_names(self) -> list[str]:
        return self.params.observations

    def decide_on(self, last: dict[str, float]) -> Decision | None:
        return check_finite(observed=last, params=self.params)

    def observe(self, observation: Observation) -> Quick | None:
        """All present and finite (:func:`non_finite` is empty): a pass on the first one."""
        last = self.values.last = present_scalars(observation, self.params.observations)
        if not last or non_finite(last):
            self.refresh()
            return None
        return self.passed(next(iter(last.values())), None, "finite", last)
