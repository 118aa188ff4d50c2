"""A tiny, safe expression language for thresholds: ``2 * ln(vocab_size)``.

Text is parsed once into a small immutable tree (never ``eval``): numbers, named symbols,
``+ - * / **``, unary minus, parentheses and a fixed set of math functions. A predicate
(used by the ``expression`` check) may add one top-level comparison. Anything else, such as
attribute access, subscripts, strings or other calls, is rejected with its column.
Columns count characters of the text (``ast`` counts UTF-8 bytes; they are converted).
A literal beyond a float's range (``1e309``) is refused; :mod:`traingate.contract.constants`
folds the parts that name no symbol, so ``ln(0)`` is refused when a contract loads.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from traingate.errors import TraingateError

MAX_LENGTH = 500
MAX_DEPTH = 40
MAX_EXPONENT = 1024  # |b| in a ** b beyond this overflows (or underflows) a float


class FormulaError(TraingateError, ValueError):
    """A formula that cannot be parsed or evaluated; ``column`` is 0-based within the text."""

    def __init__(self, message: str, column: int = 0, code: str = "formula-syntax") -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.code = code


def _log(x: float, base: float | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    # name: (implementation, min args, max args or None for unbounded)
    "ln": (math.log, 1, 1),
    "log": (_log, 1, 2),
    "log2": (math.log2, 1, 1),
    "log10": (math.log10, 1, 1),
    "exp": (math.exp, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "min": (min, 2, None),
    "max": (max, 2, None),
    "abs": (abs, 1, 1),
}

BINARY_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

_AST_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_AST_CMPOPS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}


@dataclass(frozen=True)
class Num:
    value: float
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Sym:
    name: str
    column: int


@dataclass(frozen=True)
class Neg:
    operand: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Bin:
    op: str
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    column: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Num | Sym | Neg | Bin | Call | Compare


def _fmt_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def unparse(node: Node, values: Mapping[str, float] | None = None) -> str:
    """Render a tree as text; with ``values``, symbols are replaced by their numbers."""

    def number(value: float, parent_prec: int) -> str:
        text = _fmt_number(value)  # a negative number binds like a unary minus
        return f"({text})" if text.startswith("-") and parent_prec > 3 else text

    def go(n: Node, parent_prec: int = 0) -> str:
        if isinstance(n, Num):
            return number(n.value, parent_prec)
        if isinstance(n, Sym):
            if values is not None and n.name in values:
                return number(values[n.name], parent_prec)
            return n.name
        if isinstance(n, Neg):
            text = "-" + go(n.operand, 3)
            return f"({text})" if parent_prec > 3 else text
        if isinstance(n, Bin):
            prec = _PRECEDENCE[n.op]
            right_prec = prec + (0 if n.op == "**" else 1)
            left_prec = prec + (1 if n.op == "**" else 0)
            text = f"{go(n.left, left_prec)} {n.op} {go(n.right, right_prec)}"
            return f"({text})" if prec < parent_prec else text
        if isinstance(n, Call):
            return f"{n.name}({', '.join(go(a) for a in n.args)})"
        return f"{go(n.left)} {n.op} {go(n.right)}"

    return go(node)


_NEWLINE = re.compile(r"\r\n|\r|\n")  # what Python's tokenizer takes for a line end


def _line_start(text: str, lineno: int) -> int:
    """Character offset in ``text`` at which its 1-based line ``lineno`` starts."""
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    return starts[min(max(lineno, 1), len(starts)) - 1]


def char_column(text: str, node: ast.AST) -> int:
    """Character offset in ``text`` of an ``ast`` node parsed from it (ast counts UTF-8
    bytes within a line; a column reported to a person must count characters)."""
    start = _line_start(text, getattr(node, "lineno", 1))
    head = text[start:].encode("utf-8")[: getattr(node, "col_offset", 0)]
    return start + len(head.decode("utf-8", "ignore"))


def _number(node: ast.Constant, body: str, col: int) -> Num:
    """A numeric literal; one beyond a float's range (``1e309`` reads as inf) is refused."""
    try:
        number = float(node.value)
    except OverflowError:  # an integer with more digits than a float holds: TG130, as before
        raise FormulaError("number is too large for a float", col) from None
    if not math.isfinite(number):
        segment = ast.get_source_segment(body, node) or str(node.value)
        shown = segment if len(segment) <= 24 else segment[:20] + "…"
        raise FormulaError(
            f"number `{shown}` is beyond a float's range (it would read as inf): "
            "a threshold must be a finite number",
            col,
            "formula-not-finite",
        )
    return Num(number, col)


def _convert(node: ast.AST, depth: int, allow_compare: bool, body: str, lead: int = 0) -> Node:
    col = lead + char_column(body, node)
    if depth > MAX_DEPTH:
        raise FormulaError("formula is nested too deeply", col)

    def sub(child: ast.AST) -> Node:
        return _convert(child, depth + 1, False, body, lead)

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"only numbers are allowed, not {type(node.value).__name__}", col)
        return _number(node, body, col)
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise FormulaError(f"function {node.id!r} must be called, e.g. {node.id}(x)", col)
        return Sym(node.id, col)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = sub(node.operand)
        return Neg(operand, col) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_BINOPS:
        return Bin(_AST_BINOPS[type(node.op)], sub(node.left), sub(node.right), col)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise FormulaError("only calls of the built-in math functions are allowed", col)
        name = node.func.id
        if name not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            raise FormulaError(
                f"unknown function {name!r} (allowed: {allowed})", col, "formula-unknown-function"
            )
        if node.keywords:
            raise FormulaError(f"{name}() takes no keyword arguments", col)
        _, lo, hi = FUNCTIONS[name]
        n_args = len(node.args)
        if n_args < lo or (hi is not None and n_args > hi):
            want = f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
            raise FormulaError(f"{name}() takes {want} arguments, got {n_args}", col)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise FormulaError(f"{name}() does not accept *arguments", col)
        return Call(name, tuple(sub(a) for a in node.args), col)
    if isinstance(node, ast.Compare):
        if not allow_compare:
            raise FormulaError("a comparison is only allowed at the top of a predicate", col)
        if len(node.ops) != 1 or type(node.ops[0]) not in _AST_CMPOPS:
            raise FormulaError(
                "a predicate takes exactly one comparison (<, <=, >, >=, ==, !=)", col
            )
        return Compare(_AST_CMPOPS[type(node.ops[0])], sub(node.left), sub(node.comparators[0]))
    what = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambdas",
        ast.BoolOp: "and/or",
        ast.IfExp: "conditional expressions",
    }.get(type(node), f"'{type(node).__name__}' expressions")
    raise FormulaError(f"{what} are not allowed in a formula", col)


def parse_source(text: object, what: str, max_length: int) -> tuple[ast.expr, str, int]:
    """Parse ``text`` as one Python expression (never run): (tree, stripped text, lead).

    ``lead`` is the count of leading blanks, so columns count from the text as written;
    ``what`` (``formula``, ``predicate``) names the text in errors.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a {what} must be text, not {type(text).__name__}")
    if len(text) > max_length:
        raise FormulaError(f"{what} is longer than {max_length} characters")
    body = text.strip()
    if not body:
        raise FormulaError(f"{what} is empty")
    lead = len(text) - len(text.lstrip())
    try:
        return ast.parse(body, mode="eval").body, body, lead
    except SyntaxError as exc:
        # offset is 1-based and in characters (CPython converts it) within line `lineno`
        col = lead + _line_start(body, exc.lineno or 1) + max((exc.offset or 1) - 1, 0)
        raise FormulaError(f"syntax error: {exc.msg}", col) from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError(f"{what} cannot be parsed (too deep or malformed)", lead) from None


def _symbols(node: Node) -> Iterator[Sym]:
    """Every symbol in the tree, left to right."""
    if isinstance(node, Sym):
        yield node
    elif isinstance(node, Neg):
        yield from _symbols(node.operand)
    elif isinstance(node, Bin | Compare):
        yield from _symbols(node.left)
        yield from _symbols(node.right)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from _symbols(arg)


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its source text, its tree, and the symbols it names."""

    source: str
    tree: Node

    @classmethod
    def parse(cls, text: str, *, predicate: bool = False) -> Formula:
        """Parse ``text``; ``predicate=True`` requires one top-level comparison."""
        expr, body, offset = parse_source(text, "formula", MAX_LENGTH)
        tree = _convert(expr, 0, predicate, body, offset)
        if predicate and not isinstance(tree, Compare):
            raise FormulaError("a predicate needs a comparison, e.g. `tokens_per_sec >= 0`", offset)
        return cls(text, tree)

    @classmethod
    def constant(cls, value: float) -> Formula:
        """A formula that is just a number (thresholds written as plain numbers)."""
        try:
            number = float(value)
        except OverflowError:
            raise FormulaError("number is too large for a float") from None
        return cls(_fmt_number(number), Num(number))

    @property
    def is_predicate(self) -> bool:
        return isinstance(self.tree, Compare)

    def symbols(self) -> frozenset[str]:
        """Every symbol the formula names (parameters or metrics)."""
        return frozenset(sym.name for sym in _symbols(self.tree))

    def symbol_columns(self) -> dict[str, int]:
        """First column at which each symbol appears (for located findings)."""
        cols: dict[str, int] = {}
        for sym in _symbols(self.tree):
            cols.setdefault(sym.name, sym.column)
        return cols

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Evaluate to a float. A predicate evaluates to 1.0 (holds) or 0.0 (does not)."""
        return _evaluate(self.tree, values)

    def sides(self, values: Mapping[str, float]) -> tuple[float, str, float]:
        """For a predicate: (left value, operator, right value)."""
        if not isinstance(self.tree, Compare):
            raise FormulaError("not a predicate")
        return _evaluate(self.tree.left, values), self.tree.op, _evaluate(self.tree.right, values)

    def evaluated_form(self, values: Mapping[str, float]) -> str:
        """``2 * ln(50257) = 21.64``: the formula with numbers substituted, and its value."""
        filled = unparse(self.tree, values)
        if isinstance(self.tree, Num):
            return filled
        return f"{filled} = {_fmt_number(round(self.evaluate(values), 6))}"

    def __str__(self) -> str:
        return self.source


def _evaluate(node: Node, values: Mapping[str, float]) -> float:
    try:
        result = _eval_node(node, values)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError) as exc:
        if isinstance(exc, FormulaError):
            raise
        raise FormulaError(f"cannot evaluate: {exc}", 0, "formula-eval") from None
    return result


def _eval_node(node: Node, values: Mapping[str, float]) -> float:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Sym):
        if node.name not in values:
            raise FormulaError(
                f"no value for symbol {node.name!r}", node.column, "formula-unknown-symbol"
            )
        return float(values[node.name])
    return apply_op(node, [_eval_node(child, values) for child in children(node)])


def children(node: Node) -> tuple[Node, ...]:
    """The operands of an operator, the arguments of a call; a leaf has none."""
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Bin | Compare):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


class ExponentTooLarge(OverflowError):
    """``a ** b`` with ``|b|`` beyond :data:`MAX_EXPONENT`, refused before it is computed."""


def apply_op(node: Node, args: Sequence[float]) -> float:
    """One operator or call applied to its evaluated operands."""
    if isinstance(node, Neg):
        return -args[0]
    if isinstance(node, Bin):
        left, right = args
        if node.op == "**" and abs(right) > MAX_EXPONENT:
            raise ExponentTooLarge("exponent too large")
        result = BINARY_OPS[node.op](left, right)
        if isinstance(result, complex):
            raise ValueError("result is not a real number")
        return float(result)
    if isinstance(node, Call):
        return float(FUNCTIONS[node.name][0](*args))
    assert isinstance(node, Compare)
    return 1.0 if COMPARISONS[node.op](args[0], args[1]) else 0.0
