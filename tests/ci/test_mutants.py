"""Mutation testing of falsifiers: mutant generation, code mutants, and end-to-end scoring."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from traingate.checks.base import REGISTRY
from traingate.ci.mutant_plugin import install_module
from traingate.ci.mutants.code_gen import module_mutants
from traingate.ci.mutants.contract_gen import formula_mutants
from traingate.ci.mutants.inprocess import installed
from traingate.ci.mutants.results import ContractEdit, ModuleEdit, render_text
from traingate.ci.mutants.running import plan_mutation, run_mutation, run_planned
from traingate.contract.formula import Formula, unparse
from traingate.contract.loading import load_contract


def _texts(text: str, predicate: bool = False) -> set[str]:
    return {unparse(t) for t, _ in formula_mutants(Formula.parse(text, predicate=predicate).tree)}


def test_formula_mutants_nudge_constants_and_swap_operators() -> None:
    assert _texts("2 * ln(vocab_size)") == {
        "2 / ln(vocab_size)",
        "2.2 * ln(vocab_size)",
        "1.8 * ln(vocab_size)",
    }
    assert _texts("a - 0") == {"a + 0", "a - 0.1"}
    assert _texts("x") == set()


def test_predicate_mutants_swap_comparisons() -> None:
    assert _texts("loss <= 10", predicate=True) == {
        "loss < 10",
        "loss >= 10",
        "loss <= 11",
        "loss <= 9",
    }
    assert {"x > 0", "x <= 0", "x >= 0.1"} == _texts("x >= 0", predicate=True)


MODULE = """
from traingate.checks.base import Decision


def _over(value: float, cap: float) -> bool:
    return value > cap


def decide(value: float, cap: float) -> Decision:
    return Decision(not _over(value, cap), value, cap, "<=", "value vs cap")


class Holder:
    def method(self, a: int) -> bool:
        return a == 1
"""


def test_module_comparison_mutant_is_generated_and_installed() -> None:
    mutants = list(module_mutants(MODULE))
    assert [(func, what) for _, _, func, what in mutants] == [
        ("_over", "value > cap  →  value >= cap")
    ]  # methods are not decision functions: left alone
    source, line, _, _ = mutants[0]
    assert "value >= cap" in source and line == 6
    ast.parse(source)
    name = "traingate_test_mutant_module"
    try:
        original = install_module(name, MODULE, "<original>")
        assert original.decide(1.0, 1.0).ok
        mutated = install_module(name, source, "<mutant>")
        assert sys.modules[name] is mutated
        assert not mutated.decide(1.0, 1.0).ok  # exactly at the cap now fails
    finally:
        sys.modules.pop(name, None)


COMPARE_MODULE = """
from traingate.checks.base import Decision
from traingate.contract.thresholds import Resolved


def decide(value: float, cap: float) -> Decision:
    return Decision.compare(value, "<=", Resolved(cap, "cap", "cap"), detail="value vs cap")
"""


def test_a_decision_compare_relation_is_mutated_like_an_operator() -> None:
    mutants = list(module_mutants(COMPARE_MODULE))
    assert [(func, what) for _, _, func, what in mutants] == [
        ("decide", "value <= Resolved(cap, 'cap', 'cap')  →  value < Resolved(cap, 'cap', 'cap')")
    ]
    source, line, _, _ = mutants[0]
    assert line == 7
    name = "traingate_test_compare_mutant_module"
    try:
        original = install_module(name, COMPARE_MODULE, "<original>")
        assert original.decide(1.0, 1.0).ok and not original.decide(1.1, 1.0).ok
        mutated = install_module(name, source, "<mutant>")
        decision = mutated.decide(1.0, 1.0)
        assert not decision.ok and decision.comparison == "<"  # the boundary now fails
    finally:
        sys.modules.pop(name, None)


CONTRACT = """\
contract: C-MUT-TEST
version: 1.0.0
title: Mutation test fixture
status: active
changelog:
  - {version: 1.0.0, date: 2026-11-21, change: first}
invariants:
  - id: INV-MUT-001
    title: Score at least a half
    check: expression
    at: final
    params:
      predicate: "score >= 0.5"
      metrics: [score]
    on_violation: abort
    falsified_by:
      - falsifiers/test_mut.py::test_score
"""

HEADER = """\
import math

from traingate.checks import CheckContext
from traingate.checks.expression import check_expression
from traingate.contract.regime import Finetune
from traingate.contract.shipped import invariant

PARAMS = invariant("INV-MUT-001").params


def ok(score):
    context = CheckContext(Finetune())
    return check_expression(metric_values={"score": score}, params=PARAMS, context=context).ok

"""

WEAK = """
def test_score():
    assert ok(0.9)
    assert not ok(0.1)
"""

STRONG = """
def test_score():
    assert ok(0.5)
    assert not ok(math.nextafter(0.5, 0.0))
"""


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "falsifiers").mkdir()
    (tmp_path / "contracts" / "mut.yaml").write_text(CONTRACT)
    (tmp_path / "falsifiers" / "test_mut.py").write_text(HEADER + textwrap.dedent(body))
    return tmp_path


@pytest.mark.slow
def test_boundary_falsifier_kills_every_mutant(tmp_path: Path) -> None:
    root = _project(tmp_path, STRONG)
    report = run_mutation([load_contract(root / "contracts" / "mut.yaml")], root, workers=2)
    assert report.score("C-MUT-TEST") == (5, 5)  # 4 formula mutants + 1 in check_expression
    assert report.ok
    assert "C-MUT-TEST: 5/5 mutants killed (100 %)" in render_text(report)


@pytest.mark.slow
def test_falsifier_missing_the_boundary_lets_mutants_survive(tmp_path: Path) -> None:
    root = _project(tmp_path, WEAK)
    report = run_mutation([load_contract(root / "contracts" / "mut.yaml")], root, workers=2)
    survivors = {m.description for m in report.mutants if m.outcome == "survived"}
    assert any("'score > 0.5'" in d for d in survivors)
    assert any("'score >= 0.55'" in d for d in survivors)
    assert not report.ok
    text = render_text(report)
    assert "survived:" in text and "contracts/mut.yaml:13 invariants[0].params.predicate" in text
    assert report.to_dict()["ok"] is False
    # the old way, every mutant in its own process, finds the very same survivors
    fresh = run_mutation([load_contract(root / "contracts" / "mut.yaml")], root, fresh=True)
    assert [(m.id, m.outcome) for m in fresh.mutants] == [(m.id, m.outcome) for m in report.mutants]
    for m in report.mutants:  # a survivor is never reported from the in-process run alone
        if m.outcome == "survived":
            assert m.verdicts == {"in-process": "survived", "fresh": "survived"}
        else:
            assert m.verdicts == {"in-process": "killed"}


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_in_process_and_fresh_process_runs_agree_on_shipped_mutants() -> None:
    """Three contract mutants and three check-module mutants of C-LOSS-BALANCE."""
    loaded = [load_contract(REPO / "contracts" / "loss-balance-v1.yaml")]
    outcomes = []
    for fresh in (False, True):
        report, plans = plan_mutation(loaded, REPO)
        contract = [m for m in report.mutants if m.kind != "code"][:3]
        code = [m for m in report.mutants if m.kind == "code"][:3]
        assert len(contract) == 3 and len(code) == 3
        assert {m.edit.module for m in code if isinstance(m.edit, ModuleEdit)} == {
            "traingate.checks.loss_balance"
        }
        report.mutants = contract + code
        run_planned(report, plans, workers=2, fresh=fresh)
        assert not report.baseline_failures
        outcomes.append([(m.id, m.outcome) for m in report.mutants])
        if not fresh:  # decided in the workers, not handed to the fresh path
            assert all(m.verdicts == {"in-process": "killed"} for m in report.mutants)
    assert outcomes[0] == outcomes[1]
    assert all(outcome == "killed" for _, outcome in outcomes[0])


def test_an_installed_mutant_is_fully_restored(tmp_path: Path) -> None:
    import traingate.checks
    import traingate.checks.expression as expression

    registry = list(REGISTRY.items())
    source = next(iter(module_mutants(Path(expression.__file__).read_text())))[0]
    with installed(ModuleEdit("traingate.checks.expression", source), tmp_path):
        assert sys.modules["traingate.checks.expression"] is not expression
        assert (
            REGISTRY["expression"] is not registry[[k for k, _ in registry].index("expression")][1]
        )
    assert sys.modules["traingate.checks.expression"] is expression
    assert traingate.checks.expression is expression
    assert list(REGISTRY.items()) == registry  # the same classes, in the same order
    contract = tmp_path / "contracts" / "mut.yaml"
    contract.parent.mkdir()
    contract.write_text(CONTRACT)
    with installed(ContractEdit(Path("contracts/mut.yaml"), "mutated"), tmp_path):
        assert contract.read_text() == "mutated"
    assert contract.read_text() == CONTRACT


@pytest.mark.slow
def test_failing_falsifiers_are_reported_before_any_mutant(tmp_path: Path) -> None:
    root = _project(tmp_path, "\ndef test_score():\n    assert not ok(0.9)\n")
    report = run_mutation([load_contract(root / "contracts" / "mut.yaml")], root, workers=1)
    assert "C-MUT-TEST" in report.baseline_failures and not report.mutants
    assert not report.ok
