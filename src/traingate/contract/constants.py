"""Constant folding: the parts of a formula that name no symbol must be finite numbers.

A threshold of ``.inf`` silently disables its check (or makes it always fire), NaN makes
every comparison false, and ``ln(0)`` or ``10 ** 10 ** 10`` would only fail at the first
evaluation, mid-run. :func:`check_constants` evaluates those parts when a contract loads,
with floats and a bounded exponent, and points at the innermost one that fails.
"""

from __future__ import annotations

import math

from traingate.contract.formula import (
    MAX_EXPONENT,
    Bin,
    Compare,
    ExponentTooLarge,
    FormulaError,
    Node,
    Num,
    Sym,
    apply_op,
    children,
    unparse,
)

# symbols that read as "infinity" or "not a number": no threshold may be either
NON_FINITE_NAMES = frozenset({"inf", "infinity", "nan"})


def _column(node: Node) -> int:
    """Where a sub-expression starts (a comparison starts where its left side does)."""
    return _column(node.left) if isinstance(node, Compare) else node.column


def _why(exc: ArithmeticError | ValueError) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "it divides by zero"
    if isinstance(exc, ExponentTooLarge):
        return f"its exponent is beyond ±{MAX_EXPONENT}, so it overflows a float"
    if isinstance(exc, OverflowError):
        return "it overflows a float"
    return str(exc)


def _fold(node: Node) -> float | None:
    """The value of ``node`` if it names no symbol (else None), checking every part of it."""
    if isinstance(node, Num):
        if math.isnan(node.value):
            raise FormulaError(
                "threshold is NaN: every comparison with NaN is false, so the check would "
                "always fire; write a finite number",
                node.column,
                "formula-not-finite",
            )
        if math.isinf(node.value):
            raise FormulaError(
                f"threshold is infinite ({node.value}): an infinite limit disables the check "
                "or makes it always fire; write a finite number",
                node.column,
                "formula-not-finite",
            )
        return node.value
    if isinstance(node, Sym):
        if node.name.lower() in NON_FINITE_NAMES:
            raise FormulaError(
                f"`{node.name}` is not a number in a formula, and a threshold may not be "
                "infinite or NaN: write a finite number",
                node.column,
                "formula-not-finite",
            )
        return None
    args = [_fold(child) for child in children(node)]  # every child, so all parts are checked
    if any(arg is None for arg in args):
        if isinstance(node, Bin) and args[1] is not None:
            _check_constant_right(node, args[1])
        return None
    try:
        result = apply_op(node, [arg for arg in args if arg is not None])
    except (ArithmeticError, ValueError) as exc:
        message = f"constant sub-expression `{unparse(node)}` cannot be evaluated: {_why(exc)}"
        raise FormulaError(message, _column(node), "formula-constant") from None
    if not math.isfinite(result):
        message = f"constant sub-expression `{unparse(node)}` overflows to {result}: make it finite"
        raise FormulaError(message, _column(node), "formula-constant")
    return result


def _check_constant_right(node: Bin, right: float) -> None:
    """``x / 0`` and ``x ** 2000`` fail for every value of ``x``: refuse them too."""
    if node.op == "/" and right == 0:
        why = f"its divisor `{unparse(node.right)}` is 0, so it always divides by zero"
    elif node.op == "**" and abs(right) > MAX_EXPONENT:
        why = f"its exponent `{unparse(node.right)}` is beyond ±{MAX_EXPONENT}"
    else:
        return
    message = f"sub-expression `{unparse(node)}` cannot be evaluated: {why}"
    raise FormulaError(message, node.column, "formula-constant")


def check_constants(tree: Node) -> None:
    """Raise FormulaError (with its column) at the first sub-expression naming no symbol that
    is not a finite number, or one that fails whatever its symbols are (``x / 0``): such a
    threshold would disable its check or fail mid-run.

    Folding uses floats with :data:`MAX_EXPONENT` bounding ``**``, so its cost is linear in
    the tree (``10 ** 10 ** 10`` is refused, never computed as an integer).
    """
    _fold(tree)
