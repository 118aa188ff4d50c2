"""Mutants of a contract's text: formula constants and operators, numeric params, decisions.

Each edit is applied to the raw YAML (so a default never written in the file is left alone),
and an edit whose contract no longer validates is dropped and counted, never run.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from traingate.ci.mutants.results import ContractEdit, Mutant, MutantKind
from traingate.contract.findings import field_path
from traingate.contract.formula import Bin, Call, Compare, Neg, Node, Num, unparse
from traingate.contract.kinds import CheckParams
from traingate.contract.loading import LoadedContract, load_contract
from traingate.contract.schema import Contract
from traingate.contract.thresholds import iter_formulas

BINOP_SWAPS = {"+": "-", "-": "+", "*": "/", "/": "*"}
COMPARE_SWAPS = {
    "<": ("<=", ">"),
    "<=": ("<", ">="),
    ">": (">=", "<"),
    ">=": (">", "<="),
    "==": ("!=",),
    "!=": ("==",),
}
MISSING = object()  # raw_get's answer for a path the contract file does not write

Loc = tuple[str | int, ...]


def nudge_float(value: float) -> list[float]:
    """×1.1 and ×0.9; zero becomes 0.1."""
    return [0.1] if value == 0 else [value * 1.1, value * 0.9]


def formula_mutants(node: Node) -> Iterator[tuple[Node, str]]:
    """Every single-point mutant of a formula tree, with a description of the change."""
    if isinstance(node, Num):
        for new in nudge_float(node.value):
            yield Num(new), f"constant {unparse(node)} → {unparse(Num(new))}"
    elif isinstance(node, Neg):
        for new, what in formula_mutants(node.operand):
            yield Neg(new), what
    elif isinstance(node, Bin):
        if node.op in BINOP_SWAPS:
            yield (
                Bin(BINOP_SWAPS[node.op], node.left, node.right),
                f"operator {node.op} → {BINOP_SWAPS[node.op]}",
            )
        for new, what in formula_mutants(node.left):
            yield Bin(node.op, new, node.right), what
        for new, what in formula_mutants(node.right):
            yield Bin(node.op, node.left, new), what
    elif isinstance(node, Call):
        for i, arg in enumerate(node.args):
            for new, what in formula_mutants(arg):
                args = (*node.args[:i], new, *node.args[i + 1 :])
                yield Call(node.name, args, node.column), what
    elif isinstance(node, Compare):
        for op in COMPARE_SWAPS.get(node.op, ()):
            yield Compare(op, node.left, node.right), f"comparison {node.op} → {op}"
        for new, what in formula_mutants(node.left):
            yield Compare(node.op, new, node.right), what
        for new, what in formula_mutants(node.right):
            yield Compare(node.op, node.left, new), what


def raw_get(data: Any, loc: Loc) -> Any:
    """The raw YAML value at ``loc``, or :data:`MISSING` when the file does not write it."""
    for part in loc:
        found = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        )
        if not found:
            return MISSING
        data = data[part]
    return data


def raw_set(data: Any, loc: Loc, value: Any) -> Any:
    """A deep copy of ``data`` with the value at ``loc`` replaced."""
    out = copy.deepcopy(data)
    target = out
    for part in loc[:-1]:
        target = target[part]
    target[loc[-1]] = value
    return out


def param_edits(
    params: CheckParams, raw: dict[str, Any]
) -> Iterator[tuple[Loc, Any, str, MutantKind]]:
    """(path inside params, new raw value, description, kind) for each params mutant."""
    for path, formula in iter_formulas(params):
        original = raw_get(raw, path)
        if original is MISSING:  # a default, not written in the contract
            continue
        for tree, what in formula_mutants(formula.tree):
            if isinstance(original, str):
                new: Any = unparse(tree)
            elif isinstance(tree, Num):
                new = tree.value
            else:
                continue
            shown = f"{field_path(path)}: {formula.source!r} → {unparse(tree)!r} ({what})"
            yield path, new, shown, "formula"
    for name in type(params).model_fields:
        value = getattr(params, name)
        if name not in raw or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, int):
            nudges: list[Any] = [value + 1, value - 1] if value >= 1 else [1]
        else:
            nudges = nudge_float(value)
        for new in nudges:
            yield (name,), new, f"{name}: {value} → {new:g}", "param"


def decision_edits(contract: Contract) -> Iterator[tuple[Loc, str, str]]:
    """(raw path, new ``when`` text, description) for each decision-rule branch mutant."""
    for r, rule in enumerate(contract.decisions):
        for b, branch in enumerate(rule.branches):
            predicate = getattr(branch, "when", None)
            if predicate is None:
                continue
            text = predicate.source
            for atom in predicate.atoms():
                source = atom.formula.source
                start = text.find(source, atom.offset)
                if start < 0:
                    continue
                for tree, what in formula_mutants(atom.formula.tree):
                    new = text[:start] + unparse(tree) + text[start + len(source) :]
                    loc = ("decisions", r, "branches", b, "when")
                    yield loc, new, f"{rule.id} when {text!r}: {new!r} ({what})"


def contract_mutants(loaded: LoadedContract, root: Path) -> tuple[list[Mutant], int]:
    """Contract-text mutants of one loaded contract, and how many were invalid (dropped)."""
    contract = loaded.contract
    assert contract is not None and loaded.located is not None
    data = loaded.located.data
    rel = loaded.path.resolve().relative_to(root.resolve())
    edits: list[tuple[Loc, Any, str, MutantKind, tuple[str, ...]]] = []
    for i, inv in enumerate(contract.invariants):
        raw_params = raw_get(data, ("invariants", i, "params"))
        if not isinstance(raw_params, dict):  # params omitted: every value is a default
            continue
        for path, new, what, kind in param_edits(inv.params, raw_params):
            loc = ("invariants", i, "params", *path)
            edits.append((loc, new, f"{inv.id} {what}", kind, tuple(inv.falsified_by)))
    for loc, new, what in decision_edits(contract):
        rule = contract.decisions[int(loc[1])]
        edits.append((loc, new, what, "decision", tuple(rule.falsified_by)))
    mutants: list[Mutant] = []
    invalid = 0
    with tempfile.TemporaryDirectory() as tmp:
        for loc, new, what, kind, targeted in edits:
            text = yaml.safe_dump(raw_set(data, loc, new), sort_keys=False, allow_unicode=True)
            probe = Path(tmp) / loaded.path.name
            probe.write_text(text, encoding="utf-8")
            check = load_contract(probe)
            if check.contract is None or any(f.severity == "error" for f in check.findings):
                invalid += 1
                continue
            mutants.append(
                Mutant(
                    contract=contract.contract,
                    kind=kind,
                    location=f"{rel}:{loaded.mark(loc).line} {field_path(loc)}",
                    description=what,
                    edit=ContractEdit(rel, text),
                    targeted=targeted,
                )
            )
    return mutants, invalid
