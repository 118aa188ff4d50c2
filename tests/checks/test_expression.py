"""Unit tests for the ``expression`` kind (generic predicates, INV-TRAIN-006)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.decision import CheckContext
from traingate.checks.expression import Expression, ExpressionParams, check_expression
from traingate.contract.regime import FromScratch

from .conftest import FINETUNE, build, feed

CONTEXT = CheckContext(FromScratch(256), {"min_tps": 100.0})
TPS = ExpressionParams.model_validate(
    {"predicate": "tokens_per_sec >= 0", "metrics": ["tokens_per_sec"]}
)


def make(predicate: str = "tokens_per_sec >= 0", metrics: list[str] | None = None) -> Expression:
    return build(Expression, CONTEXT, predicate=predicate, metrics=metrics or ["tokens_per_sec"])


def test_registered() -> None:
    assert REGISTRY["expression"] is Expression
    assert Expression.metric_symbols(TPS) == frozenset({"tokens_per_sec"})


def test_holding_predicate_passes() -> None:
    decision = feed(make(), [{"step": 1, "tokens_per_sec": 1234.5}])[-1]
    assert decision is not None and decision.ok
    assert (decision.observed, decision.comparison, decision.limit) == (1234.5, ">=", 0.0)
    assert decision.evaluated == "1234.5 >= 0" and decision.formula == "tokens_per_sec >= 0"


def test_violated_predicate_fires() -> None:
    decision = feed(make(), [{"tokens_per_sec": -1.0}])[-1]
    assert decision is not None and not decision.ok and "does not hold" in decision.detail


def test_exact_boundary_follows_the_operator() -> None:
    assert check_expression(metric_values={"tokens_per_sec": 0.0}, params=TPS, context=FINETUNE).ok  # type: ignore[union-attr]
    strict = ExpressionParams.model_validate({"predicate": "x > 0", "metrics": ["x"]})
    assert not check_expression(metric_values={"x": 0.0}, params=strict, context=FINETUNE).ok  # type: ignore[union-attr]


def test_parameters_and_regime_symbols_resolve() -> None:
    check = make("tokens_per_sec / ln(vocab_size) >= min_tps")
    ok, bad = feed(check, [{"tokens_per_sec": 600.0}, {"tokens_per_sec": 500.0}])
    assert ok is not None and ok.ok and ok.limit == 100.0
    assert bad is not None and not bad.ok
    assert bad.evaluated == "500 / ln(256) >= 100"


def test_missing_metric_is_not_evaluated() -> None:
    check = make("a <= b", ["a", "b"])
    assert check.verdict() is None
    assert feed(check, [{"a": 1.0}, {"a": 1.0, "b": None}]) == [None, None]
    decision = feed(check, [{"a": 1.0, "b": 2.0}])[-1]
    assert decision is not None and decision.ok


def test_nan_metric_fails_the_predicate() -> None:
    decision = check_expression(
        metric_values={"tokens_per_sec": math.nan}, params=TPS, context=FINETUNE
    )
    assert decision is not None and not decision.ok


def test_undefined_value_fails_with_the_reason() -> None:
    params = ExpressionParams.model_validate({"predicate": "a / b >= 1", "metrics": ["a", "b"]})
    decision = check_expression(metric_values={"a": 1.0, "b": 0.0}, params=params, context=FINETUNE)
    assert decision is not None and not decision.ok
    assert decision.comparison == "evaluates" and "cannot be evaluated" in decision.detail


@pytest.mark.parametrize(
    ("text", "column", "code"),
    [
        ("tokens_per_sec >= (1", 18, "formula-syntax"),
        ("x >= bar(1)", 5, "formula-unknown-function"),
    ],
)
def test_formula_error_is_a_validation_error_with_its_column(
    text: str, column: int, code: str
) -> None:
    with pytest.raises(ValidationError) as info:
        ExpressionParams.model_validate({"predicate": text, "metrics": ["x"]})
    (error,) = [e for e in info.value.errors() if e["loc"] == ("predicate",)]
    assert error["type"] == "formula"
    assert (error["ctx"]["column"], error["ctx"]["code"]) == (column, code)


@pytest.mark.parametrize(
    "raw",
    [
        {"predicate": "tokens_per_sec + 1", "metrics": ["tokens_per_sec"]},  # not a predicate
        {"predicate": "__import__('os') >= 0", "metrics": []},
        {"predicate": 3, "metrics": ["x"]},
        {"predicate": "x >= 0", "metrics": []},
        {"predicate": "x >= 0", "metrics": ["x", "x"]},
        {"predicate": "x >= 0", "metrics": ["y"]},  # a metric the predicate never names
        {"predicate": "x >= 0", "metrics": ["x"], "extra": 1},
    ],
)
def test_bad_params_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExpressionParams.model_validate(raw)


def test_params_serialise_to_their_text() -> None:
    assert TPS.model_dump() == {"predicate": "tokens_per_sec >= 0", "metrics": ["tokens_per_sec"]}
