"""Pydantic models of a contract file: strict, closed, and pointing at the failing field.

A contract holds typed run ``parameters``, ``invariants`` (each a registered check kind with
its own params model, evaluated at one point of the loop) and ``gates`` (sets of invariants
that must be discharged by evidence). Whether anything is discharged is never written here:
``contracts verify`` derives it by running the tests the contract names.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from traingate.contract.kinds import At, CheckParams
from traingate.contract.regime import REGIME_NAMES, RegimeName
from traingate.decisions.rules import DecisionRule

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
CONTRACT_ID = r"^C-[A-Z0-9]+(?:-[A-Z0-9]+)*$"
INVARIANT_ID = r"^INV-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
GATE_ID = r"^GATE-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
TEST_ID = r"^[\w./-]+\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]]*\])?$"

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
InvariantId = Annotated[str, StringConstraints(pattern=INVARIANT_ID)]
GateId = Annotated[str, StringConstraints(pattern=GATE_ID)]
TestId = Annotated[str, StringConstraints(pattern=TEST_ID)]
Status = Literal["draft", "active", "deprecated"]


class Strict(BaseModel):
    """Base for every contract model: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


class Invariant(Strict):
    """One executable promise: a check kind, its params, where it runs, what it does on failure.

    ``regimes`` limits where it applies (a cold-start check means nothing for a finetune).
    ``params`` arrives as a mapping and is replaced at load time by the kind's own params
    model (see :mod:`traingate.contract.loading`), so errors point inside it.
    """

    id: InvariantId
    title: Text
    description: str | None = None
    check: Text
    at: At
    params: dict[str, Any] | CheckParams = Field(default_factory=dict, union_mode="left_to_right")
    on_violation: Literal["abort", "warn"]
    regimes: list[RegimeName] = Field(default_factory=lambda: list(REGIME_NAMES), min_length=1)
    hint: str | None = None
    falsified_by: list[TestId] = Field(default_factory=list)


class Gate(Strict):
    """A ship decision: every required invariant discharged, every evidence test passing."""

    id: GateId
    title: str | None = None
    requires: list[InvariantId] = Field(min_length=1)
    ship_blocking: bool
    evidence: list[TestId] = Field(default_factory=list)


class Contract(Strict):
    """One contract file."""

    contract: Annotated[str, StringConstraints(pattern=CONTRACT_ID)]
    version: str
    title: Text
    status: Status
    description: str | None = None
    changelog: list[ChangelogEntry] = Field(min_length=1)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    invariants: list[Invariant] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    decisions: list[DecisionRule] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        """``C-TRAIN-PRETRAIN@1.2.0``: how violations and verdicts name the contract."""
        return f"{self.contract}@{self.version}"


def is_semver(text: str) -> bool:
    return re.match(SEMVER, text) is not None
