"""The threshold formula language: what it computes, what it shows, and what it refuses.

Formulas come from YAML written by people, so every refusal is a FormulaError with a
column (never another exception, never execution), and text rendered by ``unparse``
parses back to the same value.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from traingate.contract.formula import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    Bin,
    Call,
    Compare,
    Formula,
    FormulaError,
    Neg,
    Node,
    Num,
    Sym,
    unparse,
)


def value(text: str, **values: float) -> float:
    return Formula.parse(text).evaluate(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 ** 3 ** 2", 512.0),  # ** is right-associative
        ("(2 ** 3) ** 2", 64.0),
        ("-2 ** 2", -4.0),  # unary minus binds looser than **
        ("(-2) ** 2", 4.0),
        ("2 ** -1", 0.5),
        ("-2 ** -2", -0.25),
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("10 - 4 - 3", 3.0),  # left-associative
        ("64 / 4 / 2", 8.0),
        ("2 * 3 ** 2", 18.0),
        ("--2", 2.0),
        ("+2", 2.0),
        ("-x * 3", -6.0),
        ("1e-3 * 1000", 1.0),
    ],
)
def test_precedence_and_associativity(text: str, expected: float) -> None:
    assert value(text, x=2.0) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ln(e)", 1.0),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log2(8)", 3.0),
        ("log10(1000)", 3.0),
        ("exp(0)", 1.0),
        ("sqrt(16)", 4.0),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2)", 3.0),
        ("abs(-2.5)", 2.5),
    ],
)
def test_every_function(text: str, expected: float) -> None:
    assert math.isclose(value(text, e=math.e), expected, rel_tol=1e-12)


def test_the_function_table_is_covered() -> None:
    """A new function needs a row in test_every_function."""
    covered = {"ln", "log", "log2", "log10", "exp", "sqrt", "min", "max", "abs"}
    assert set(FUNCTIONS) == covered


def test_symbols_and_their_columns() -> None:
    f = Formula.parse("2 * ln(vocab_size) + max(a, b) - a")
    assert f.symbols() == {"vocab_size", "a", "b"}  # function names are not symbols
    assert f.symbol_columns() == {"vocab_size": 7, "a": 25, "b": 28}
    assert Formula.parse("3.5").symbols() == frozenset()


def test_columns_count_leading_blanks() -> None:
    assert Formula.parse("  2 * x").symbol_columns() == {"x": 6}
    with pytest.raises(FormulaError) as info:
        Formula.parse("  (2 * 1.5")
    assert info.value.column == 2


def test_evaluated_form_shows_the_numbers() -> None:
    f = Formula.parse("2 * ln(vocab_size)")
    assert f.evaluated_form({"vocab_size": 50257}) == "2 * ln(50257) = 21.6498"
    assert math.isclose(f.evaluate({"vocab_size": 50257}), 2 * math.log(50257))
    assert Formula.constant(10.0).evaluated_form({}) == "10"
    assert Formula.constant(10.0).source == "10"
    assert str(f) == "2 * ln(vocab_size)"


def test_evaluated_form_parenthesises_negative_values() -> None:
    assert Formula.parse("x ** 2").evaluated_form({"x": -3}) == "(-3) ** 2 = 9"
    tree = Bin("**", Num(-3.0), Num(2.0))
    assert Formula.parse(unparse(tree)).evaluate({}) == 9.0


def test_predicates() -> None:
    p = Formula.parse("tokens_per_sec >= 2 * floor_", predicate=True)
    assert p.is_predicate
    assert p.evaluate({"tokens_per_sec": 10, "floor_": 5}) == 1.0
    assert p.evaluate({"tokens_per_sec": 9, "floor_": 5}) == 0.0
    assert p.sides({"tokens_per_sec": 9, "floor_": 5}) == (9.0, ">=", 10.0)
    with pytest.raises(FormulaError, match="needs a comparison"):
        Formula.parse("1 + 2", predicate=True)
    with pytest.raises(FormulaError, match="not a predicate"):
        Formula.parse("1 + 2").sides({})
    for op in ("<", "<=", ">", ">=", "==", "!="):
        assert Formula.parse(f"1 {op} 2", predicate=True).evaluate({}) == float(
            {"<": 1 < 2, "<=": 1 <= 2, ">": 1 > 2, ">=": 1 >= 2, "==": False, "!=": True}[op]
        )


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("2 * a.b", 4, "attribute access"),
        ("x + y[0]", 4, "subscripts"),
        ("lambda: 1", 0, "lambdas"),
        ("1 + 'abc'", 4, "only numbers are allowed, not str"),
        ("2 * print(1)", 4, "unknown function 'print'"),
        ("__import__('os').system('x')", 0, "only calls of the built-in math functions"),
        ("ln(x=2)", 0, "takes no keyword arguments"),
        ("max(1, 2, **k)", 0, "takes no keyword arguments"),
        ("max(*x, 1)", 0, "does not accept *arguments"),
        ("ln(1, 2)", 0, "ln() takes 1 arguments, got 2"),
        ("min(1)", 0, "min() takes 2+ arguments, got 1"),
        ("1 + (2 < 3)", 5, "comparison is only allowed at the top of a predicate"),
        ("x < 1", 0, "comparison is only allowed at the top of a predicate"),
        ("x and y", 0, "and/or"),
        ("1 + True", 4, "not bool"),
        ("not x", 0, "'UnaryOp' expressions"),
        ("x if y else z", 0, "conditional expressions"),
        ("7 // 2", 0, "'BinOp' expressions"),
        ("[1, 2]", 0, "'List' expressions"),
        ("f'{x}'", 0, "'JoinedStr' expressions"),
        ("1j", 0, "not complex"),
        ("None", 0, "not NoneType"),
        ("(x := 1)", 1, "'NamedExpr' expressions"),
        ("2 * ln", 4, "function 'ln' must be called"),
        ("  2 * a.b", 6, "attribute access"),  # leading blanks count
        ("(2 * 1.5", 0, "was never closed"),
    ],
)
def test_forbidden_constructs_are_rejected_with_a_column(
    text: str, column: int, message: str
) -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse(text)
    assert info.value.column == column
    assert message in info.value.message


def test_unknown_function_has_its_own_code() -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse("2 * lnn(3)")
    assert (info.value.code, info.value.column) == ("formula-unknown-function", 4)


def test_comparisons_nested_inside_a_predicate_are_rejected() -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse("(1 < 2) < 3", predicate=True)
    assert info.value.column == 1
    with pytest.raises(FormulaError, match="exactly one comparison"):
        Formula.parse("1 < x < 3", predicate=True)


@pytest.mark.parametrize(
    "text",
    [
        "1 + " * 130 + "1",  # long, and left-deep beyond MAX_DEPTH
        "-" * 100 + "1",
        "ln(" * 60 + "1" + ")" * 60,
        "(" * 240 + "1" + ")" * 240,  # more parentheses than Python's parser nests
        "x" * (MAX_LENGTH + 1),
        "",
        "   ",
        "1\x00",
    ],
    ids=["left-deep", "unary-chain", "call-chain", "parens", "too-long", "empty", "blank", "nul"],
)
def test_oversized_or_degenerate_input_is_refused_cleanly(text: str) -> None:
    with pytest.raises(FormulaError):
        Formula.parse(text)


def test_depth_limit_is_a_bound_not_a_cliff() -> None:
    """MAX_DEPTH unary minuses parse; one more does not."""
    assert value("-" * MAX_DEPTH + "1") == 1.0
    with pytest.raises(FormulaError, match="nested too deeply"):
        Formula.parse("-" * (MAX_DEPTH + 1) + "1")


def test_huge_integer_literal_is_a_formula_error() -> None:
    with pytest.raises(FormulaError):
        Formula.parse("1" + "0" * 400)


def test_non_text_is_refused() -> None:
    with pytest.raises(FormulaError, match="must be text"):
        Formula.parse(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "ln(0)",
        "ln(-1)",
        "1 / 0",
        "x / (y - y)",
        "sqrt(-1)",
        "log(8, 1)",
        "log(8, 0)",
        "0 ** -1",
        "(-8) ** 0.5",
        "exp(1000)",
        "10 ** 400",
        "2 ** 2000",
        "9 ** 9 ** 9",
        "2 ** 2 ** 2 ** 2 ** 2",
    ],
)
def test_domain_errors_raise_formula_error(text: str) -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse(text).evaluate({"x": 1.0, "y": 2.0})
    assert not isinstance(info.value, ZeroDivisionError | OverflowError)


def test_missing_symbol_value_is_a_formula_error() -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse("2 * ln(vocab_size)").evaluate({})
    assert (info.value.code, info.value.column) == ("formula-unknown-symbol", 7)


# Round trip: random trees → unparse → parse → same value.

# Constants that unparse renders exactly (it keeps 6 significant digits).
constants = st.one_of(
    st.integers(min_value=0, max_value=1000).map(float),
    st.sampled_from([0.5, 0.25, 1.5, 2.75, 0.001, 1e-6, 12345.5, 1e20]),
)
leaves = st.one_of(
    constants.map(Num),
    st.sampled_from(["a", "b", "c"]).map(lambda n: Sym(n, 0)),
)
ARITY = {"ln": (1,), "log": (1, 2), "log2": (1,), "log10": (1,), "exp": (1,), "sqrt": (1,)}
ARITY |= {"min": (2, 3), "max": (2, 3), "abs": (1,)}


@st.composite
def calls(draw: st.DrawFn, children: st.SearchStrategy[Node]) -> Node:
    name = draw(st.sampled_from(sorted(ARITY)))
    n = draw(st.sampled_from(ARITY[name]))
    return Call(name, tuple(draw(children) for _ in range(n)), 0)


def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        children.map(Neg),
        st.builds(Bin, st.sampled_from(["+", "-", "*", "/", "**"]), children, children),
        calls(children),
    )


trees = st.recursive(leaves, extend, max_leaves=12)
symbol_values = st.fixed_dictionaries(
    {k: st.floats(-100, 100, allow_nan=False) for k in ("a", "b", "c")}
)


def depth(n: Node) -> int:
    if isinstance(n, Neg):
        return 1 + depth(n.operand)
    if isinstance(n, Bin | Compare):
        return 1 + max(depth(n.left), depth(n.right))
    if isinstance(n, Call):
        return 1 + max(depth(a) for a in n.args)
    return 0


def outcome(tree: Node, values: dict[str, float]) -> float | str:
    try:
        return Formula("", tree).evaluate(values)
    except FormulaError:
        return "error"


def same(x: float | str, y: float | str) -> bool:
    if isinstance(x, str) or isinstance(y, str):
        return x == y
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300)


@settings(max_examples=300, deadline=None)
@given(trees, symbol_values)
def test_unparse_parse_round_trip(tree: Node, values: dict[str, float]) -> None:
    text = unparse(tree)
    assume(len(text) <= MAX_LENGTH and depth(tree) <= MAX_DEPTH)
    parsed = Formula.parse(text)
    assert unparse(parsed.tree) == text  # the rendering is canonical
    assert same(outcome(parsed.tree, values), outcome(tree, values)), text


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), trees, trees, symbol_values)
def test_predicate_round_trip(op: str, left: Node, right: Node, values: dict[str, float]) -> None:
    tree = Compare(op, left, right)
    text = unparse(tree)
    assume(len(text) <= MAX_LENGTH and depth(tree) <= MAX_DEPTH)
    parsed = Formula.parse(text, predicate=True)
    assert unparse(parsed.tree) == text
    assert same(outcome(parsed.tree, values), outcome(tree, values)), text
