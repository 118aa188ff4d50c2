"""Pydantic models of a contract file: strict, closed, and pointing at the failing field.

A contract holds typed run ``parameters``, ``invariants`` (each a registered check kind with
its own params model, evaluated at one point of the loop: ``params`` are validated by the
model of the kind ``check:`` names, in the same pass, so their errors point inside them) and
``gates`` (sets of invariants
that must be discharged by evidence). Whether anything is discharged is never written here:
``contracts verify`` derives it by running the tests the contract names.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from traingate.contract.decision_rule import DecisionRule
from traingate.contract.fields import Strict, TestId, Text
from traingate.contract.findings import suggest
from traingate.contract.kinds import KINDS, At, CheckParams
from traingate.contract.regime import REGIME_NAMES, RegimeName

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
CONTRACT_ID = r"^C-[A-Z0-9]+(?:-[A-Z0-9]+)*$"
INVARIANT_ID = r"^INV-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
GATE_ID = r"^GATE-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
MODE_NAME = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"

InvariantId = Annotated[str, StringConstraints(pattern=INVARIANT_ID)]
ModeName = Annotated[str, StringConstraints(pattern=MODE_NAME)]
GateId = Annotated[str, StringConstraints(pattern=GATE_ID)]
Status = Literal["draft", "active", "deprecated"]


class ChangelogEntry(Strict):
    version: str
    date: dt.date
    change: Text


class Parameter(Strict):
    """A run parameter that formulas may name, with its type and bounds."""

    type: Literal["int", "float"]
    min: float | None = None
    max: float | None = None
    description: str | None = None
    # false: a run that does not give it leaves the invariants whose thresholds name it
    # unevaluated (named at start, like a plan too short for them) instead of being refused
    required: bool = True

    def check_value(self, name: str, value: float) -> float:
        """Return ``value`` if it fits this parameter's type and bounds, else raise ValueError."""
        if not math.isfinite(value):
            raise ValueError(f"parameter {name} must be a finite number, got {value}")
        if self.type == "int" and float(value) != int(value):
            raise ValueError(f"parameter {name} must be an integer, got {value}")
        if self.min is not None and value < self.min:
            raise ValueError(f"parameter {name} = {value} is below its minimum {self.min:g}")
        if self.max is not None and value > self.max:
            raise ValueError(f"parameter {name} = {value} is above its maximum {self.max:g}")
        return float(value)


class ModeRow(Strict):
    """What ``trainer pretrain --mode NAME`` sets together: the regime the Guard judges the
    run in, the peak lr, the warm-up steps and the target val loss (an explicit flag wins)."""

    regime: RegimeName
    lr: float = Field(gt=0, allow_inf_nan=False)
    warmup: int = Field(ge=1)
    target_val_loss: float = Field(gt=0, allow_inf_nan=False)
    description: str | None = None


class Invariant(Strict):
    """One executable promise: a check kind, its params, where it runs, what it does on failure.

    ``regimes`` limits where it applies (a cold-start check means nothing for a finetune).
    ``check`` must be a registered kind (:data:`traingate.contract.kinds.KINDS`), ``at`` a
    point it runs at, and ``params`` are typed by that kind's own params model.
    """

    id: InvariantId
    title: Text
    description: str | None = None
    check: Text
    at: At
    # the default ({}) is validated too: a kind with required params reports them missing
    params: CheckParams = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    # stop: a violation asks the loop to end early and cleanly (``guard.should_stop``)
    on_violation: Literal["abort", "warn", "stop"]
    regimes: list[RegimeName] = Field(default_factory=lambda: list(REGIME_NAMES), min_length=1)
    hint: str | None = None
    falsified_by: list[TestId] = Field(default_factory=list)

    @field_validator("check")
    @classmethod
    def _kind_is_registered(cls, check: str) -> str:
        if check not in KINDS:
            raise PydanticCustomError(
                "check_kind",
                "unknown check kind `{check}`{hint}",
                {"check": check, "hint": suggest(check, sorted(KINDS))},
            )
        return check

    @field_validator("at")
    @classmethod
    def _kind_runs_here(cls, at: At, info: ValidationInfo) -> At:
        kind = KINDS.get(info.data.get("check", ""))
        if kind is not None and at not in kind.points:
            raise PydanticCustomError(
                "check_point",
                "check `{check}` runs at {allowed}, not `{at}`",
                {"check": kind.kind, "allowed": ", ".join(sorted(kind.points)), "at": at},
            )
        return at

    @field_validator("params", mode="plain")
    @classmethod
    def _typed_by_kind(cls, params: Any, info: ValidationInfo) -> Any:
        kind = KINDS.get(info.data.get("check", ""))
        if kind is None:
            return params  # `check` failed and has its own error; this model is not built
        return kind.params_model.model_validate(params, context={"at": info.data.get("at")})

    @field_validator("on_violation")
    @classmethod
    def _stop_has_a_loop(cls, on_violation: str, info: ValidationInfo) -> str:
        if on_violation == "stop" and info.data.get("at") == "final":
            raise PydanticCustomError(
                "stop_at_final",
                "on_violation `stop` ends the loop early; at `final` the loop has ended "
                "(use warn or abort)",
            )
        return on_violation


class Gate(Strict):
    """A ship decision: every required invariant discharged, every evidence test passing."""

    id: GateId
    title: str | None = None
    requires: list[InvariantId] = Field(min_length=1)
    ship_blocking: bool
    evidence: list[TestId] = Field(default_factory=list)
    # evidence traingate cannot run (another language's tests, a benchmark): `verify` reports
    # each as `external`, never as discharged, so a gate citing one is never discharged
    external_evidence: list[Text] = Field(default_factory=list)


class Contract(Strict):
    """One contract file."""

    contract: Annotated[str, StringConstraints(pattern=CONTRACT_ID)]
    version: str
    title: Text
    status: Status
    description: str | None = None
    changelog: list[ChangelogEntry] = Field(min_length=1)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    modes: dict[ModeName, ModeRow] = Field(default_factory=dict)
    invariants: list[Invariant] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    decisions: list[DecisionRule] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        """``C-TRAIN-PRETRAIN@1.2.0``: how violations and verdicts name the contract."""
        return f"{self.contract}@{self.version}"


def is_semver(text: str) -> bool:
    return re.match(SEMVER, text) is not None
