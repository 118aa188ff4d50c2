"""The decision-rule schema: no hand-typed numbers, no escaping paths, known symbols only,
and the predicate language (comparisons under and/or/not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from traingate.contract.formula import FormulaError
from traingate.contract.loading import load_contract
from traingate.contract.testids import problem_with_test_id
from traingate.decisions import (
    DecisionError,
    DecisionRule,
    Metric,
    Source,
    evaluate_rule,
    parse_predicate,
)

from .conftest import ROOT, RULE, YAML_RULE, minimal_rule

# --- the schema: no hand-typed numbers, no escaping paths, known symbols only -------------


@pytest.mark.parametrize(
    "metric",
    [
        97.3,  # the number itself
        "97.3",
        {"kind": "value", "higher_is_better": True, "value": 97.3},
        {"kind": "value", "higher_is_better": True, "source": 97.3},
        {"kind": "value", "higher_is_better": True, "source": {"file": "x.json", "field": 97.3}},
        {
            "kind": "rate",
            "higher_is_better": True,
            "successes": 9730,
            "trials": {"file": "e.json", "field": "n"},
        },
    ],
)
def test_a_hand_typed_number_is_rejected(metric: object) -> None:
    with pytest.raises(ValidationError):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_the_rule_has_no_numeric_field_for_a_metric() -> None:
    """A metric is a kind, a direction, and where to read it: nowhere to type a number."""
    assert set(Metric.model_fields) == {
        "kind",
        "higher_is_better",
        "successes",
        "trials",
        "source",
        "description",
    }
    assert set(Source.model_fields) == {"file", "field"}
    assert all(f.annotation is not float for f in Source.model_fields.values())


@pytest.mark.parametrize(
    "file",
    ["../other/eval.json", "eval/../../x.json", "/etc/eval.json", "C:/eval.json", "a\\b.json"],
)
def test_path_escape_is_rejected_at_load(file: str) -> None:
    metric = {"kind": "value", "higher_is_better": True, "source": {"file": file, "field": "x"}}
    with pytest.raises(ValidationError, match="sidecar"):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_wrong_suffix_is_rejected() -> None:
    metric = {"kind": "value", "higher_is_better": True, "source": {"file": "a.yaml", "field": "x"}}
    with pytest.raises(ValidationError, match=r"\.jsonl"):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_symlink_escape_is_rejected_at_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"ok": 1, "n": 2}))
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval.json").symlink_to(outside)
    rule = DecisionRule.model_validate(minimal_rule())
    with pytest.raises(DecisionError, match="outside the run directory"):
        evaluate_rule(rule, tmp_path / "a", tmp_path / "b")


def load_findings(tmp_path: Path, when: str) -> list:
    path = tmp_path / "c.yaml"
    path.write_text(YAML_RULE.format(when=when))
    return load_contract(path).findings


def test_unknown_symbol_is_a_located_load_finding(tmp_path: Path) -> None:
    findings = load_findings(tmp_path, "gap >= 1.0 and gpa < sigma")
    (f,) = findings
    line = YAML_RULE.format(when="gap >= 1.0 and gpa < sigma").splitlines()[f.line - 1]
    assert f.code == "TG131" and f.severity == "error"
    assert line[f.column - 1 :].startswith("gpa < sigma")
    assert f.field == "decisions[0].branches[0].when"
    assert "did you mean `gap`" in f.message
    assert f.location().endswith(f"c.yaml:{f.line}:{f.column}")


@pytest.mark.parametrize(
    ("when", "code", "at"),
    [
        ("gap >= 1.0 &&", "TG130", "&"),
        ("gap", "TG130", "gap"),
        ("gap >= 1 >= 2", "TG130", "gap"),
        ("gap >= 1 and __import__('os') > 0", "TG132", "__import__"),
        ("gap >= 1 and (gap + 1).real > 0", "TG130", "(gap"),
        ("z > 2 or mde > foo", "TG131", "foo"),
        ("gap > 1 and gap < 1" + "0" * 400, "TG130", "1000"),
    ],
)
def test_bad_predicates_are_located(tmp_path: Path, when: str, code: str, at: str) -> None:
    (f,) = load_findings(tmp_path, when)
    line = YAML_RULE.format(when=when).splitlines()[f.line - 1]
    assert f.code == code, f.message
    assert line[f.column - 1 :].startswith(at), (line, f.column)


def test_statistics_are_known_only_with_a_tie_test() -> None:
    with pytest.raises(ValidationError, match="`sigma` is not a metric"):
        DecisionRule.model_validate(
            minimal_rule(tie=None, branches=[{"when": "sigma < 1", "verdict": "X"}])
        )
    rule = DecisionRule.model_validate(
        minimal_rule(branches=[{"when": "sigma < 1 and acc_a > acc_b", "verdict": "X"}])
    )
    assert {"sigma", "mde", "z", "p_value", "acc_a", "acc_b", "gap"} <= set(rule.symbols())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"deltas": {"gap": "nope"}}, "unknown metric `nope`"),
        ({"deltas": {"sigma": "acc"}}, "reserved"),
        ({"deltas": {"acc_a": "acc"}}, "reserved"),
        ({"deltas": {"ln": "acc"}}, "reserved"),
        ({"tie": {"metric": "nope"}}, "unknown metric"),
        (
            {
                "metrics": {
                    "cal": {
                        "kind": "value",
                        "higher_is_better": False,
                        "source": {"file": "c.json", "field": "p90"},
                    }
                },
                "deltas": {},
                "tie": {"metric": "cal"},
                "branches": [{"otherwise": True, "verdict": "X"}],
            },
            "value metric",
        ),
        (
            {
                "branches": [
                    {"otherwise": True, "verdict": "X"},
                    {"when": "gap > 0", "verdict": "Y"},
                ]
            },
            "last branch",
        ),
        ({"branches": [{"when": "gap > 0", "otherwise": True, "verdict": "Y"}]}, "not both"),
        ({"branches": [{"verdict": "Y"}]}, "not both"),
        ({"branches": [{"when": 1.0, "verdict": "Y"}]}, "predicate is text"),
        ({"branches": []}, "at least 1"),
        ({"id": "DEC-TEST-1"}, "pattern"),
        ({"tie": {"metric": "acc", "alpha": 0.0}}, "greater than 0"),
    ],
)
def test_rule_level_mistakes_are_rejected(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DecisionRule.model_validate(minimal_rule(**overrides))


def test_rate_and_value_sources_must_fit_the_kind() -> None:
    src = {"file": "e.json", "field": "x"}
    with pytest.raises(ValidationError, match="`trials` is missing"):
        DecisionRule.model_validate(
            minimal_rule(
                metrics={"acc": {"kind": "rate", "higher_is_better": True, "successes": src}}
            )
        )
    with pytest.raises(ValidationError, match="`source` is for kind: value"):
        DecisionRule.model_validate(
            minimal_rule(
                metrics={
                    "acc": {
                        "kind": "rate",
                        "higher_is_better": True,
                        "successes": src,
                        "trials": src,
                        "source": src,
                    }
                }
            )
        )


def test_shipped_rule_names_falsifiers_that_exist() -> None:
    assert RULE.falsified_by
    for test_id in RULE.falsified_by:
        assert problem_with_test_id(test_id, ROOT) is None, test_id


# --- predicates ----------------------------------------------------------------------------


def test_predicate_boolean_layer() -> None:
    p = parse_predicate("not (a >= 1 and b < 0) or c == 2")
    assert p.evaluate({"a": 1, "b": 0, "c": 2}) is True
    assert p.evaluate({"a": 1, "b": -1, "c": 3}) is False
    assert p.evaluate({"a": 0, "b": -1, "c": 3}) is True
    assert p.render({"a": 1, "b": -1, "c": 3}) == (
        "not (1 >= 1 (true) and -1 < 0 (true)) or 3 == 2 (false)"
    )
    text = p.source
    assert p.symbol_columns() == {"a": text.index("a >="), "b": text.index("b <"), "c": 26}
    assert parse_predicate("a > 1 or b > 1 and c > 1").evaluate({"a": 2, "b": 0, "c": 0})


@pytest.mark.parametrize(
    "text", ["", "   ", "a", "a and b > 1", "-(a > 1)", "True", "a if b else c"]
)
def test_predicate_needs_comparisons(text: str) -> None:
    with pytest.raises(FormulaError):
        parse_predicate(text)
