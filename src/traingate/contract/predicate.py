"""Branch conditions of decision rules: formula comparisons joined by ``and``/``or``/``not``.

Each comparison is a traingate :class:`~traingate.contract.formula.Formula` predicate; this
module adds only the boolean layer above them. Text is parsed once, never ``eval``-ed, and
every error carries the (character) column it points at. In a contract, a comparison whose
constant parts are not finite numbers (``gap >= inf``, ``z < exp(1000)``) is refused.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from traingate.contract.constants import check_constants
from traingate.contract.fields import Opaque
from traingate.contract.formula import (
    Formula,
    FormulaError,
    char_column,
    parse_source,
    unparse,
)
from traingate.contract.thresholds import parse_text

MAX_PREDICATE_LENGTH = 2000
MAX_DEPTH = 40


@dataclass(frozen=True)
class Atom:
    """One comparison, parsed by :class:`Formula`; ``offset`` is its column in the predicate."""

    formula: Formula
    offset: int


@dataclass(frozen=True)
class Not:
    """``not X``."""

    operand: BoolNode


@dataclass(frozen=True)
class And:
    """``X and Y and ...``."""

    operands: tuple[BoolNode, ...]


@dataclass(frozen=True)
class Or:
    """``X or Y or ...``."""

    operands: tuple[BoolNode, ...]


BoolNode = Atom | Not | And | Or
_PRECEDENCE = {Or: 1, And: 2, Not: 3, Atom: 4}


def _to_bool(node: ast.AST, body: str, lead: int, depth: int) -> BoolNode:
    col = lead + char_column(body, node)
    if depth > MAX_DEPTH:
        raise FormulaError("predicate is nested too deeply", col)
    if isinstance(node, ast.BoolOp):
        operands = tuple(_to_bool(v, body, lead, depth + 1) for v in node.values)
        return And(operands) if isinstance(node.op, ast.And) else Or(operands)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_to_bool(node.operand, body, lead, depth + 1))
    if isinstance(node, ast.Compare):
        segment = ast.get_source_segment(body, node) or ""
        try:
            return Atom(Formula.parse(segment, predicate=True), col)
        except FormulaError as exc:
            raise FormulaError(exc.message, col + exc.column, exc.code) from None
    raise FormulaError(
        "each operand of `and`, `or` and `not` must be a comparison, e.g. `gap >= 1.0`", col
    )


def _atoms(node: BoolNode) -> Iterator[Atom]:
    if isinstance(node, Atom):
        yield node
    elif isinstance(node, Not):
        yield from _atoms(node.operand)
    else:
        for operand in node.operands:
            yield from _atoms(operand)


@dataclass(frozen=True)
class Predicate:
    """A parsed branch condition: comparisons (traingate formulas) under and/or/not."""

    source: str
    tree: BoolNode

    def atoms(self) -> list[Atom]:
        """Every comparison, left to right."""
        return list(_atoms(self.tree))

    def symbol_columns(self) -> dict[str, int]:
        """First column (in ``source``) at which each symbol appears."""
        cols: dict[str, int] = {}
        for atom in self.atoms():
            for name, col in sorted(atom.formula.symbol_columns().items(), key=lambda i: i[1]):
                cols.setdefault(name, atom.offset + col)
        return cols

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """Truth of the predicate; raises FormulaError for a missing symbol or a bad value."""

        def go(n: BoolNode) -> bool:
            if isinstance(n, Atom):
                return n.formula.evaluate(values) == 1.0
            if isinstance(n, Not):
                return not go(n.operand)
            results = [go(o) for o in n.operands]  # every comparison, for reporting
            return all(results) if isinstance(n, And) else any(results)

        return go(self.tree)

    def render(self, values: Mapping[str, float]) -> str:
        """The predicate with numbers substituted, each comparison tagged true/false."""

        def go(n: BoolNode, parent: int) -> str:
            prec = _PRECEDENCE[type(n)]
            if isinstance(n, Atom):
                truth = "true" if n.formula.evaluate(values) == 1.0 else "false"
                text = f"{unparse(n.formula.tree, values)} ({truth})"
            elif isinstance(n, Not):
                text = f"not {go(n.operand, prec)}"
            else:
                joiner = " and " if isinstance(n, And) else " or "
                text = joiner.join(go(o, prec + 1) for o in n.operands)
            return f"({text})" if prec < parent else text

        return go(self.tree, 0)

    def __str__(self) -> str:
        return self.source


def parse_predicate(text: str) -> Predicate:
    """Parse ``gap >= -0.5 and not (harness_delta < 0)``; errors carry their column."""
    flat = text.replace("\r", " ").replace("\n", " ") if isinstance(text, str) else text
    expr, body, lead = parse_source(flat, "predicate", MAX_PREDICATE_LENGTH)
    return Predicate(text, _to_bool(expr, body, lead, 0))


def _checked(text: str) -> Predicate:
    """``parse_predicate``, then every comparison's constants must be finite numbers."""
    predicate = parse_predicate(text)
    for atom in predicate.atoms():
        try:
            check_constants(atom.formula.tree)
        except FormulaError as exc:
            raise FormulaError(exc.message, atom.offset + exc.column, exc.code) from None
    return predicate


def _to_predicate(value: Any) -> Predicate:
    if isinstance(value, Predicate):
        return value
    refusal = "a predicate is text such as `gap >= 1.0`, not a literal value"
    return parse_text(value, _checked, refusal)


PredicateField = Annotated[Predicate, Opaque(_to_predicate, lambda p: p.source, {"type": "string"})]
