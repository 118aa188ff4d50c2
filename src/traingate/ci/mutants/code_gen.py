"""Mutants of the decision code a contract's invariants run: comparisons swapped.

Only the check module's top-level functions (the pure decision functions and their helpers)
are mutated; methods are left alone.
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


def module_mutants(source: str) -> Iterator[tuple[str, int, str, str]]:
    """(mutated source, line, function name, description) for every swappable comparison in
    the module's top-level functions (the pure decision functions and their helpers)."""
    tree = ast.parse(source)
    sites: list[tuple[str, int, int]] = []  # function, compare ordinal, op index
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Compare):
                for j, op in enumerate(node.ops):
                    if type(op) in AST_COMPARE_SWAPS:
                        sites.append((func.name, compares.index(node), j))
    for func_name, ordinal, j in sites:
        mutated = ast.parse(source)
        node = [n for n in ast.walk(mutated) if isinstance(n, ast.Compare)][ordinal]
        before = ast.unparse(node)
        node.ops[j] = AST_COMPARE_SWAPS[type(node.ops[j])]()
        yield ast.unparse(mutated), node.lineno, func_name, f"{before}  →  {ast.unparse(node)}"


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
