"""Pre-registered A/B decision rules as written in a contract: metrics, deltas, tie test, branches.

A ``DecisionRule`` names metrics that are read from files inside each run directory (never
typed by hand), their A − B deltas (percentage points for rates), an optional
two-proportion tie test and ordered branches whose predicates pick a verdict. This module is
the rule's schema only; reading the files and applying a rule is :mod:`traingate.decisions`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from traingate.contract.fields import Strict, TestId, Text
from traingate.contract.findings import suggest
from traingate.contract.formula import FUNCTIONS
from traingate.contract.predicate import PredicateField

DECISION_ID = r"^DEC-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
SYMBOL = r"^[a-z][a-z0-9_]*$"
VERDICT = r"^[A-Z][A-Z0-9_]*$"
FIELD_PATH = r"^(?:[^.\[\]\s]+|\[\d+\])(?:\.[^.\[\]\s]+|\[\d+\])*$"
SIDECAR_SUFFIXES = (".json", ".jsonl")

STATISTICS: dict[str, str] = {
    "sigma": "pooled σ of the tie metric's A − B difference (pp)",
    "sigma_unpooled": "unpooled σ of the tie metric's A − B difference (pp)",
    "z": "Δ/σ of the tie metric (signed; 0 when σ is 0)",
    "p_value": "two-sided p-value of z",
    "mde": "minimum detectable effect of the tie metric at the rule's α and power (pp)",
}

SymbolName = Annotated[str, StringConstraints(pattern=SYMBOL)]
VerdictName = Annotated[str, StringConstraints(pattern=VERDICT)]
Role = Literal["successes", "trials", "value"]


# --- where numbers come from -------------------------------------------------------------


def _check_sidecar_path(value: str) -> str:
    """A sidecar path is relative to the run directory, stays inside it, and is JSON(L)."""
    if not value.strip():
        raise PydanticCustomError("sidecar_path", "a sidecar path is needed")
    if "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise PydanticCustomError(
            "sidecar_path", "write sidecar paths with `/`, relative to the run directory"
        )
    path = PurePosixPath(value)
    if path.is_absolute():
        raise PydanticCustomError(
            "sidecar_path", "a sidecar path must be relative to the run directory, not absolute"
        )
    if ".." in path.parts:
        raise PydanticCustomError(
            "sidecar_path", "a sidecar path must stay inside the run directory (no `..`)"
        )
    if path.suffix not in SIDECAR_SUFFIXES:
        raise PydanticCustomError(
            "sidecar_path", "a sidecar is a .json file or a .jsonl file (its last record is read)"
        )
    return value


def field_parts(path: str) -> tuple[str | int, ...]:
    """Split a JSON path: ``runs[2].acc_at_1`` → ``("runs", 2, "acc_at_1")``."""
    parts: list[str | int] = []
    for match in re.finditer(r"\[(\d+)\]|([^.\[\]]+)", path):
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
    return tuple(parts)


class Source(Strict):
    """Where one number lives: a JSON path (dotted keys, ``[i]`` indices) in a run's sidecar."""

    file: Annotated[str, AfterValidator(_check_sidecar_path)]
    field: Annotated[str, StringConstraints(pattern=FIELD_PATH)]


class Metric(Strict):
    """A metric read from each run: a rate (successes/trials) or a single value."""

    kind: Literal["rate", "value"]
    higher_is_better: bool
    successes: Source | None = None
    trials: Source | None = None
    source: Source | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _sources_fit_kind(self) -> Metric:
        if self.kind == "rate":
            for name in ("successes", "trials"):
                if getattr(self, name) is None:
                    raise PydanticCustomError(
                        "metric_kind",
                        "a rate metric reads `successes` and `trials` ({{file, field}} each); "
                        "`{name}` is missing",
                        {"name": name},
                    )
            if self.source is not None:
                raise PydanticCustomError(
                    "metric_kind",
                    "a rate metric reads `successes` and `trials`; `source` is for kind: value",
                    {"subpath": "source"},
                )
        else:
            if self.source is None:
                raise PydanticCustomError(
                    "metric_kind", "a value metric reads `source` ({{file, field}}); it is missing"
                )
            for name in ("successes", "trials"):
                if getattr(self, name) is not None:
                    raise PydanticCustomError(
                        "metric_kind",
                        "`{name}` is for kind: rate; a value metric reads `source`",
                        {"name": name, "subpath": name},
                    )
        return self

    def sources(self) -> list[tuple[Role, Source]]:
        """(role, source) pairs: successes and trials for a rate, value for a value."""
        if self.kind == "rate":
            assert self.successes is not None and self.trials is not None
            return [("successes", self.successes), ("trials", self.trials)]
        assert self.source is not None
        return [("value", self.source)]


class TieTest(Strict):
    """Two-proportion z-test on one rate metric, with the MDE at ``alpha`` and ``power``."""

    metric: SymbolName
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    power: float = Field(default=0.8, ge=0.5, lt=1.0)


class Arms(Strict):
    """What runs A and B are (labels for reports only)."""

    a: Text
    b: Text


class Branch(Strict):
    """``{when: PREDICATE, verdict: NAME}``, or ``{otherwise: true, verdict: NAME}`` last."""

    when: PredicateField | None = None
    otherwise: Literal[True] | None = None
    verdict: VerdictName

    @field_validator("verdict", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(
                "verdict_boolean",
                "YAML read this verdict as a boolean (NO, YES, ON, OFF, TRUE, FALSE are "
                'booleans in YAML): quote it, e.g. verdict: "NO"',
            )
        return value

    @model_validator(mode="after")
    def _one_condition(self) -> Branch:
        if (self.when is None) == (self.otherwise is None):
            raise PydanticCustomError(
                "branch", "a branch has either `when: <predicate>` or `otherwise: true`, not both"
            )
        return self


# --- the rule ----------------------------------------------------------------------------


def defined_symbols(
    metrics: Mapping[str, Metric], deltas: Mapping[str, str], tie: TieTest | None
) -> dict[str, str]:
    """Every symbol a predicate may name, with what it means."""
    out: dict[str, str] = {}
    for name, metric in metrics.items():
        unit = " (%)" if metric.kind == "rate" else ""
        out[f"{name}_a"] = f"{name} of run A{unit}"
        out[f"{name}_b"] = f"{name} of run B{unit}"
    for name, metric_name in deltas.items():
        metric = metrics.get(metric_name)
        unit = " (pp)" if metric is not None and metric.kind == "rate" else ""
        out[name] = f"{metric_name} A − B{unit}"
    if tie is not None:
        out.update(STATISTICS)
    return out


def _check_branch_symbols(branch: Branch, info: ValidationInfo) -> Branch:
    """Every symbol in ``when`` must be a metric value, delta or statistic of the rule."""
    if branch.when is None or not {"metrics", "deltas", "tie"} <= set(info.data):
        return branch  # an earlier field failed and has its own error
    known = defined_symbols(info.data["metrics"], info.data["deltas"], info.data["tie"])
    for name, col in sorted(branch.when.symbol_columns().items(), key=lambda i: i[1]):
        if name not in known:
            listed = ", ".join(sorted(known))
            raise PydanticCustomError(
                "formula",
                "{message}",
                {
                    "message": f"`{name}` is not a metric, delta or statistic of this rule"
                    f"{suggest(name, sorted(known))} (defined: {listed})",
                    "column": col,
                    "code": "formula-unknown-symbol",
                    "subpath": "when",
                },
            )
    return branch


class DecisionRule(Strict):
    """A pre-registered A/B decision: metrics from sidecars, deltas, a tie test, branches."""

    id: Annotated[str, StringConstraints(pattern=DECISION_ID)]
    title: Text
    description: str | None = None
    arms: Arms | None = None
    metrics: dict[SymbolName, Metric] = Field(min_length=1)
    deltas: dict[SymbolName, SymbolName] = Field(default_factory=dict)
    tie: TieTest | None = None
    branches: list[Annotated[Branch, AfterValidator(_check_branch_symbols)]] = Field(min_length=1)
    falsified_by: list[TestId] = Field(default_factory=list)

    @field_validator("deltas")
    @classmethod
    def _deltas_name_metrics(cls, deltas: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        metrics = info.data.get("metrics")
        if metrics is None:
            return deltas
        taken = set(defined_symbols(metrics, {}, None)) | set(STATISTICS)
        for name, metric_name in deltas.items():
            if metric_name not in metrics:
                raise PydanticCustomError(
                    "decision_ref",
                    "delta `{name}` names unknown metric `{metric}` (metrics: {known})",
                    {
                        "name": name,
                        "metric": metric_name,
                        "known": ", ".join(metrics),
                        "subpath": name,
                    },
                )
            if name in taken or keyword.iskeyword(name) or name in FUNCTIONS:
                raise PydanticCustomError(
                    "decision_ref",
                    "delta name `{name}` is reserved (a keyword, function, statistic or "
                    "metric value): choose another",
                    {"name": name, "subpath": name},
                )
        return deltas

    @field_validator("tie")
    @classmethod
    def _tie_on_a_rate(cls, tie: TieTest | None, info: ValidationInfo) -> TieTest | None:
        metrics = info.data.get("metrics")
        if tie is None or metrics is None:
            return tie
        metric = metrics.get(tie.metric)
        if metric is None or metric.kind != "rate":
            what = "an unknown metric" if metric is None else "a value metric"
            raise PydanticCustomError(
                "decision_ref",
                "the tie test needs a rate metric; `{metric}` is {what}",
                {"metric": tie.metric, "what": what, "subpath": "metric"},
            )
        return tie

    @field_validator("branches")
    @classmethod
    def _otherwise_last(cls, branches: list[Branch]) -> list[Branch]:
        for i, branch in enumerate(branches[:-1]):
            if branch.otherwise:
                raise PydanticCustomError(
                    "branch",
                    "`otherwise` must be the last branch: the branches after it can never be taken",
                    {"subpath": i},
                )
        return branches

    def symbols(self) -> dict[str, str]:
        """Every symbol this rule's predicates may name, with what it means."""
        return defined_symbols(self.metrics, self.deltas, self.tie)
