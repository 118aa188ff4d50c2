"""Threshold values in contracts: a number, a formula, or one of those per regime.

``ratio_limit: 2.0``, ``cap: "2 * ln(vocab_size)"`` and
``epoch_zero_cap: {finetune: "10.0", from_scratch: "2 * ln(vocab_size)"}`` are all
thresholds. Formulas are parsed when the contract loads, and their constant parts must be
finite numbers then (``.inf``, ``1e309``, ``ln(0)`` are refused); they resolve to a number,
with their evaluated form kept for messages, once the regime and run parameters are known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from traingate.contract.constants import check_constants
from traingate.contract.fields import Opaque
from traingate.contract.formula import Formula, FormulaError
from traingate.contract.regime import REGIME_NAMES, Finetune, FromScratch


def located_formula_error(exc: FormulaError) -> PydanticCustomError:
    """A formula error as a pydantic error whose context keeps the column and code, so the
    loader can point at the exact character in the YAML."""
    return PydanticCustomError(
        "formula", "{message}", {"message": exc.message, "column": exc.column, "code": exc.code}
    )


T = TypeVar("T")


def parse_text(value: Any, parse: Callable[[str], T], refusal: str) -> T:
    """``parse(value)`` for a text field of a pydantic model; a value that is not text, or a
    FormulaError, becomes a pydantic error (``predicate_type``, or a located ``formula``)."""
    if not isinstance(value, str):
        raise PydanticCustomError("predicate_type", refusal)
    try:
        return parse(value)
    except FormulaError as exc:
        raise located_formula_error(exc) from None


def _to_formula(value: Any) -> Formula:
    if isinstance(value, Formula):
        return value
    if isinstance(value, bool):
        raise PydanticCustomError(
            "threshold_type", "a threshold is a number or a formula, not a boolean"
        )
    if isinstance(value, int | float | str):
        try:
            formula = Formula.parse(value) if isinstance(value, str) else Formula.constant(value)
            check_constants(formula.tree)  # inf, NaN, ln(0): refused now, not at first use
        except FormulaError as exc:
            raise located_formula_error(exc) from None
        return formula
    raise PydanticCustomError("threshold_type", "a threshold is a number or a formula text")


FormulaField = Annotated[
    Formula,
    Opaque(_to_formula, lambda f: f.source, {"anyOf": [{"type": "number"}, {"type": "string"}]}),
]


class RegimeThreshold(BaseModel):
    """A threshold that differs by regime; both regimes must be given."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    finetune: FormulaField
    from_scratch: FormulaField

    def for_regime(self, regime: Finetune | FromScratch) -> Formula:
        return self.finetune if regime.kind == "finetune" else self.from_scratch


def _to_threshold(value: Any) -> Formula | RegimeThreshold:
    if isinstance(value, Formula | RegimeThreshold):
        return value
    if not isinstance(value, Mapping):
        return _to_formula(value)
    keys = set(REGIME_NAMES)
    for key in value:
        if key not in keys:
            raise PydanticCustomError(
                "regime_key",
                "unknown regime `{key}` in a regime-keyed threshold "
                "(expected finetune and from_scratch)",
                {"key": str(key), "subpath": str(key)},
            )
    for key in REGIME_NAMES:
        if key not in value:
            raise PydanticCustomError(
                "regime_missing",
                "regime-keyed threshold is missing `{key}`: give a value for every regime",
                {"key": key},
            )
    formulas = {}
    for key in REGIME_NAMES:
        try:
            formulas[key] = _to_formula(value[key])
        except PydanticCustomError as exc:
            raise PydanticCustomError(
                exc.type, exc.message_template, {**(exc.context or {}), "subpath": key}
            ) from None
    return RegimeThreshold(**formulas)


Threshold = Annotated[
    Formula | RegimeThreshold,
    Opaque(
        _to_threshold,
        lambda t: t.source if isinstance(t, Formula) else t.model_dump(),
        {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "object"}]},
    ),
]


@dataclass(frozen=True)
class Resolved:
    """A threshold evaluated for one run: its value, its source and its evaluated form."""

    value: float
    formula: str
    evaluated: str


def resolve(
    threshold: Formula | RegimeThreshold,
    regime: Finetune | FromScratch,
    values: Mapping[str, float],
) -> Resolved:
    """Evaluate ``threshold`` under ``regime`` with run parameter ``values``."""
    formula = threshold.for_regime(regime) if isinstance(threshold, RegimeThreshold) else threshold
    scope = {**values, **regime.symbols()}
    return Resolved(formula.evaluate(scope), formula.source, formula.evaluated_form(scope))


def iter_formulas(
    obj: Any, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], Formula]]:
    """Every formula inside a params model (with its field path), for validation."""
    found: list[tuple[tuple[str | int, ...], Formula]] = []
    if isinstance(obj, Formula):
        found.append((path, obj))
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            found.extend(iter_formulas(getattr(obj, name), (*path, name)))
    elif isinstance(obj, Mapping):
        for key, val in obj.items():
            found.extend(iter_formulas(val, (*path, key)))
    elif isinstance(obj, list | tuple):
        for i, val in enumerate(obj):
            found.extend(iter_formulas(val, (*path, i)))
    return found
