"""Generic invariant: a predicate over scalar metrics and run parameters.

``predicate: "tokens_per_sec >= 0"`` with ``metrics: [tokens_per_sec]``. Symbols listed in
``metrics`` are read from each observation; every other symbol is a contract parameter (or
a regime symbol such as ``vocab_size``), which ``contracts validate`` checks is declared.
The predicate is parsed when the contract loads, so a typo is a validation error with its
column, never a crash mid-run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from traingate.checks.base import (
    CheckParams,
    Observation,
    ScalarCheck,
    present_scalars,
    register,
)
from traingate.checks.decision import CheckContext, Decision, Quick
from traingate.contract.fields import Opaque
from traingate.contract.formula import COMPARISONS, Formula, FormulaError, unparse
from traingate.contract.thresholds import located_formula_error


def _to_predicate(value: Any) -> Formula:
    if isinstance(value, Formula) and value.is_predicate:
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("predicate_type", "a predicate is formula text with a comparison")
    try:
        return Formula.parse(value, predicate=True)
    except FormulaError as exc:
        raise located_formula_error(exc) from None


# Opaque: one prebuilt core schema; a PlainValidator had pydantic build (and drop) the
# schema of a Formula's whole tree of dataclasses too, ~2.5 ms of start-up
PredicateField = Annotated[Formula, Opaque(_to_predicate, lambda f: f.source, {"type": "string"})]


class ExpressionParams(CheckParams):
    """``predicate`` must hold; ``metrics`` names its symbols that are observations."""

    predicate: PredicateField
    metrics: list[str] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _metrics_in_predicate(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        duplicates = sorted({m for m in metrics if metrics.count(m) > 1})
        if duplicates:
            raise ValueError(f"metrics are listed twice: {', '.join(duplicates)}")
        predicate = info.data.get("predicate")
        if predicate is not None:
            unused = [m for m in metrics if m not in predicate.symbols()]
            if unused:
                raise ValueError(
                    f"metrics not named by the predicate {predicate.source!r}: {', '.join(unused)}"
                )
        return metrics


def check_expression(
    *,
    metric_values: Mapping[str, float | None],
    params: ExpressionParams,
    context: CheckContext,
) -> Decision | None:
    """Evaluate the predicate with ``metric_values`` and the run's parameter ``values``.

    ``None`` when a metric in ``params.metrics`` is missing (not evaluated). A predicate
    that cannot be evaluated (e.g. division by zero) fails, with the reason in the detail.
    """
    observed = all_observed(metric_values, params)
    if observed is None:
        return None
    scope = {**context.symbols(), **observed}
    predicate = params.predicate
    filled = unparse(predicate.tree, scope)
    try:
        holds, left, op, right = predicate_holds(predicate, scope)
    except FormulaError as exc:
        return Decision(
            ok=False,
            observed=math.nan,
            limit=None,
            comparison="evaluates",
            detail=f"{predicate.source} cannot be evaluated at {filled}: {exc.message}",
            hint="the predicate is undefined for these values: guard it in the formula",
            formula=predicate.source,
            evaluated=filled,
            metrics=observed,
        )
    return Decision(
        ok=holds,
        observed=left,
        limit=right,
        comparison=op,
        detail=f"{predicate.source}: {filled} {'holds' if holds else 'does not hold'}",
        hint="" if holds else f"the contract requires {predicate.source}",
        formula=predicate.source,
        evaluated=filled,
        metrics=observed,
    )


def all_observed(
    metric_values: Mapping[str, float | None], params: ExpressionParams
) -> dict[str, float] | None:
    """The values of ``params.metrics``; ``None`` when one of them is missing."""
    observed = present_scalars(metric_values, params.metrics)
    if len(observed) < len(params.metrics):
        return None
    return observed


def predicate_holds(
    predicate: Formula, scope: Mapping[str, float]
) -> tuple[bool, float, str, float]:
    """Whether ``predicate`` holds in ``scope``, with its left side, comparison and right
    side; a FormulaError when it cannot be evaluated there."""
    left, op, right = predicate.sides(scope)
    return COMPARISONS[op](left, right), left, op, right


@register
class Expression(ScalarCheck[ExpressionParams]):
    """Applies :func:`check_expression` to the latest observation (no history needed)."""

    kind = "expression"
    params_model = ExpressionParams
    points = frozenset({"step", "validation", "final"})
    summary = "a predicate over scalar metrics and run parameters holds"

    @classmethod
    def metric_symbols(cls, params: CheckParams) -> frozenset[str]:
        """The symbols ``params.metrics`` lists: read from observations, not parameters."""
        return frozenset(cls.own(params).metrics)

    def observes(self) -> frozenset[str]:
        """The predicate's metric symbols: all of them must be observed."""
        return self.metric_symbols(self.params)

    def scalar_names(self) -> list[str]:
        return self.params.metrics

    def decide_on(self, last: dict[str, float]) -> Decision | None:
        return check_expression(metric_values=last, params=self.params, context=self.context)

    @cached_property
    def _symbols(self) -> dict[str, float]:
        """The run's symbols (fixed for it: taken once)."""
        return self.context.symbols()

    def observe(self, observation: Observation) -> Quick | None:
        """Every metric observed and the predicate holding (:func:`predicate_holds`): a pass."""
        observed = all_observed(observation, self.params)  # what ``update`` keeps, when all
        if observed is None:
            self.update(observation)
            return None
        self.values.last = observed
        try:
            holds, left, op, right = predicate_holds(
                self.params.predicate, {**self._symbols, **observed}
            )
        except FormulaError:
            holds = False
        if not holds:
            self.refresh()
            return None
        return self.passed(left, right, op, observed)
