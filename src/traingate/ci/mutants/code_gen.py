"""Mutants of the decision code a contract's invariants run: comparisons swapped.

Only the check module's top-level functions (the pure decision functions and their helpers)
are mutated; methods are left alone. A comparison is either an operator (``x <= cap``) or
the relation a ``Decision.compare(x, "<=", limit, ...)`` call tests, which is swapped the
same way (``"<="`` ↔ ``"<"``), so moving a comparison into ``Decision`` keeps its mutant.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

from traingate.checks import REGISTRY
from traingate.ci.mutants import PACKAGE_PARENT
from traingate.ci.mutants.results import ModuleEdit, Mutant
from traingate.contract.schema import Contract

AST_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}

RELATION_SWAPS = {"<=": "<", "<": "<=", ">=": ">", ">": ">="}


def relation_argument(node: ast.AST) -> ast.Constant | None:
    """The relation string of a ``Decision.compare(observed, "<=", limit, ...)`` call."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "Decision"
        and len(node.args) >= 3
    ):
        return None
    relation = node.args[1]
    if isinstance(relation, ast.Constant) and relation.value in RELATION_SWAPS:
        return relation
    return None


def comparison_sites(tree: ast.Module) -> Iterator[tuple[str, int, int]]:
    """(function, ordinal among the module's walked nodes, operator index; -1 for a
    ``Decision.compare`` relation) of every swappable comparison in top-level functions."""
    ordinals = {id(node): i for i, node in enumerate(ast.walk(tree))}
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Compare):
                for j, op in enumerate(node.ops):
                    if type(op) in AST_COMPARE_SWAPS:
                        yield func.name, ordinals[id(node)], j
            elif relation_argument(node) is not None:
                yield func.name, ordinals[id(node)], -1


def swap(node: ast.AST, j: int) -> str:
    """Swap one comparison in place; the description 'before  →  after'."""
    if isinstance(node, ast.Compare):
        before = ast.unparse(node)
        node.ops[j] = AST_COMPARE_SWAPS[type(node.ops[j])]()
        return f"{before}  →  {ast.unparse(node)}"
    assert isinstance(node, ast.Call)
    relation = relation_argument(node)
    assert relation is not None
    observed, limit = ast.unparse(node.args[0]), ast.unparse(node.args[2])
    before = f"{observed} {relation.value} {limit}"
    relation.value = RELATION_SWAPS[relation.value]
    return f"{before}  →  {observed} {relation.value} {limit}"


def module_mutants(source: str) -> Iterator[tuple[str, int, str, str]]:
    """(mutated source, line, function name, description) for every swappable comparison in
    the module's top-level functions (the pure decision functions and their helpers)."""
    for func_name, ordinal, j in list(comparison_sites(ast.parse(source))):
        mutated = ast.parse(source)
        node = next(n for i, n in enumerate(ast.walk(mutated)) if i == ordinal)
        what = swap(node, j)
        yield ast.unparse(mutated), getattr(node, "lineno", 0), func_name, what


def code_mutants(contract: Contract, root: Path) -> list[Mutant]:
    """Comparison mutants of every check module the contract's invariants use."""
    mutants: list[Mutant] = []
    for kind in dict.fromkeys(inv.check for inv in contract.invariants):
        cls = REGISTRY.get(kind)
        if cls is None:
            continue
        module = sys.modules[cls.__module__]
        file = Path(inspect.getsourcefile(module) or "")
        shown = display_path(file, root)
        targeted = tuple(
            dict.fromkeys(
                t for inv in contract.invariants if inv.check == kind for t in inv.falsified_by
            )
        )
        for source, line, func, what in module_mutants(file.read_text(encoding="utf-8")):
            mutants.append(
                Mutant(
                    contract=contract.contract,
                    kind="code",
                    location=f"{shown}:{line}",
                    description=f"{func}: {what}",
                    edit=ModuleEdit(module.__name__, source),
                    targeted=targeted,
                )
            )
    return mutants


def display_path(file: Path, root: Path) -> str:
    """``file`` relative to the project root, else to the installed package's parent."""
    for base in (root, PACKAGE_PARENT):
        try:
            return str(file.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(file)
