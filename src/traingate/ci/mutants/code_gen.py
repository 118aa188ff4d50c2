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


def reached(tree: ast.Module) -> dict[str, set[str]]:
    """Each top-level function or class → the top-level functions and classes its code
    (bases, decorators and body included) reaches, itself included, through the names it
    uses."""
    defs = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    uses = {
        name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs}
        for name, node in defs.items()
    }
    reach: dict[str, set[str]] = {}
    for name in defs:
        seen, todo = {name}, [name]
        while todo:
            for used in uses[todo.pop()] - seen:
                seen.add(used)
                todo.append(used)
        reach[name] = seen
    return reach


def covering_kinds(module: str, reach: dict[str, set[str]], func: str) -> set[str]:
    """The registered kinds whose class (defined in ``module``, whose :func:`reached` is
    ``reach``) reaches function ``func``: a mutant of ``func`` changes what those kinds
    decide, and no other kind's."""
    return {
        kind
        for kind, cls in REGISTRY.items()
        if cls.__module__ == module and func in reach.get(cls.__name__, set())
    }


def covering_tests(contract: Contract, kinds: set[str]) -> tuple[str, ...]:
    """The falsifiers of the contract's invariants of ``kinds``, in contract order."""
    return tuple(
        dict.fromkeys(
            t for inv in contract.invariants if inv.check in kinds for t in inv.falsified_by
        )
    )


def code_mutants(contract: Contract, root: Path) -> list[Mutant]:
    """Comparison mutants of every check module the contract's invariants use, once per
    kind. Each targets the falsifiers of the contract's invariants whose kind reaches the
    mutated function (those of ``kind`` when none does)."""
    mutants: list[Mutant] = []
    for kind in dict.fromkeys(inv.check for inv in contract.invariants):
        cls = REGISTRY.get(kind)
        if cls is None:
            continue
        module = sys.modules[cls.__module__]
        file = Path(inspect.getsourcefile(module) or "")
        shown = display_path(file, root)
        text = file.read_text(encoding="utf-8")
        reach = reached(ast.parse(text))
        for source, line, func, what in module_mutants(text):
            kinds = covering_kinds(module.__name__, reach, func)
            targeted = covering_tests(contract, kinds) or covering_tests(contract, {kind})
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
