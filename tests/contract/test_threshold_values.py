"""Thresholds that cannot be a finite number are errors when the contract loads.

An infinite limit silently disables a ship-blocking check (or makes it always fire), NaN
makes every comparison false, and a constant such as ``ln(0)`` or ``10 ** 10 ** 10`` would
only fail at its first evaluation, mid-run. Each is a located finding instead (TG135 for a
number that is not finite, TG136 for a constant sub-expression that overflows or cannot be
evaluated), at the field's line and the offending sub-expression's column.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import TypeAdapter, ValidationError
from traingate_cli.contracts_cmd import cli

from traingate.contract.constants import check_constants
from traingate.contract.findings import CODES, Finding
from traingate.contract.formula import Formula, FormulaError
from traingate.contract.loading import load_contract
from traingate.contract.predicate import Predicate, PredicateField
from traingate.contract.validation import validate_paths

from .cap_contract import CAP_COLUMN, CAP_LINE, FIELD, REPO, text_from, write, write_invariant


def write_expression(tmp_path: Path, predicate: str) -> Path:
    """The contract with one step ``expression`` invariant over ``tokens_per_sec``."""
    params = f"      predicate: {predicate}\n      metrics: [tokens_per_sec]"
    return write_invariant(tmp_path, "expression", "step", params, name="expr.yaml")


def findings(path: Path) -> list[Finding]:
    """Every finding ``contracts validate`` reports for ``path``, except the unused-param one."""
    report = validate_paths([path], root=REPO)
    assert report.fatal == []
    return [f for f in report.findings if f.code != "TG133"]


def only(path: Path) -> Finding:
    (finding,) = findings(path)
    return finding


def test_the_new_codes_are_listed() -> None:
    assert CODES["TG135"] == "threshold or constant is not finite (inf, NaN, or beyond a float)"
    assert CODES["TG136"] == "constant sub-expression overflows or cannot be evaluated"


NOT_FINITE = [
    pytest.param(".inf", 0, "threshold is infinite (inf)", id="yaml-inf"),
    pytest.param("-.inf", 0, "threshold is infinite (-inf)", id="yaml-minus-inf"),
    pytest.param(".nan", 0, "threshold is NaN", id="yaml-nan"),
    pytest.param("1.0e+309", 0, "threshold is infinite (inf)", id="yaml-float-overflow"),
    # without a dot, YAML reads 1e309 as text: a formula whose literal overflows
    pytest.param("1e309", 0, "number `1e309` is beyond a float's range", id="text-1e309"),
    pytest.param('"2 * 1e309"', 5, "number `1e309` is beyond", id="literal-in-formula"),
    pytest.param("inf", 0, "`inf` is not a number", id="inf-as-text"),
    pytest.param("nan", 0, "`nan` is not a number", id="nan-as-text"),
    pytest.param('"2 * ln(vocab_size) * NaN"', 22, "`NaN` is not a number", id="nan-in-formula"),
    pytest.param('"Infinity"', 1, "`Infinity` is not a number", id="infinity-quoted"),
]


@pytest.mark.parametrize(("cap", "shift", "piece"), NOT_FINITE)
def test_a_threshold_that_is_not_finite_is_tg135_at_its_column(
    tmp_path: Path, cap: str, shift: int, piece: str
) -> None:
    finding = only(write(tmp_path, cap))
    assert (finding.code, finding.severity, finding.field) == ("TG135", "error", FIELD)
    assert (finding.line, finding.column) == (CAP_LINE, CAP_COLUMN + shift)
    assert piece in finding.message, finding.message
    assert "finite number" in finding.message


UNEVALUABLE = [  # (cap, the sub-expression reported, a piece of the message)
    ('"1e308 * 10"', "1e308 * 10", "overflows to inf"),
    ('"10**10**10"', "10**10**10", "exponent"),
    ('"1/0"', "1/0", "divides by zero"),
    ('"ln(0)"', "ln(0)", "math domain error"),
    ('"sqrt(-1)"', "sqrt(-1)", "math domain error"),
    ('"exp(1000)"', "exp(1000)", "overflows"),
    ('"(-8) ** 0.5"', "(-8) ** 0.5", "not a real number"),
    ('"0 ** -1"', "0 ** -1", "cannot be evaluated"),
    ('"2 * ln(vocab_size) + ln(0)"', "ln(0)", "math domain error"),
    ('"max(vocab_size, 3 / (2 - 2))"', "3 / (2 - 2)", "divides by zero"),
    ('"vocab_size * (1 + exp(10 ** 3))"', "exp(10 ** 3)", "overflows"),
    ('"10 + 2 * ln(0)"', "ln(0)", "math domain error"),
    # fails for every value of its symbol: a constant zero divisor, a huge constant power
    ('"ln(vocab_size) / (1 - 1)"', "ln(vocab_size) / (1 - 1)", "always divides by zero"),
    ('"vocab_size ** (1000 * 3)"', "vocab_size ** (1000 * 3)", "exponent `1000 * 3`"),
]


@pytest.mark.parametrize(("cap", "offending", "piece"), UNEVALUABLE)
def test_a_constant_that_cannot_be_evaluated_is_tg136_at_its_sub_expression(
    tmp_path: Path, cap: str, offending: str, piece: str
) -> None:
    path = write(tmp_path, cap)
    finding = only(path)
    assert (finding.code, finding.severity, finding.field) == ("TG136", "error", FIELD)
    assert finding.line == CAP_LINE
    assert text_from(path, CAP_LINE, finding.column).startswith(offending), finding.column
    assert piece in finding.message, finding.message


def test_the_tower_of_powers_is_refused_without_computing_it(tmp_path: Path) -> None:
    """Python ints would compute 10**10**10 for ever; the check folds floats and bounds it."""
    path = write(tmp_path, '"10 ** 10 ** 10 ** 10 + 9 ** 9 ** 9 ** 9"')
    started = time.monotonic()
    finding = only(path)
    assert time.monotonic() - started < 5.0
    # 10 ** 10 is 1e10, a float; 10 ** 1e10 is the first sub-expression that overflows
    assert (finding.code, finding.column) == ("TG136", CAP_COLUMN + 1 + len("10 ** "))
    assert "exponent" in finding.message


def cap_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[CAP_LINE - 1]


@pytest.mark.parametrize(
    ("cap", "regime", "code", "starts"),
    [
        (
            '{finetune: 10.0, from_scratch: "2 * ln(vocab_size) * 1e400"}',
            "from_scratch",
            "TG135",
            "1e400",
        ),
        ('{finetune: .nan, from_scratch: "2 * ln(vocab_size)"}', "finetune", "TG135", ".nan"),
        (
            '{finetune: "exp(710)", from_scratch: "2 * ln(vocab_size)"}',
            "finetune",
            "TG136",
            "exp(710)",
        ),
        (
            '{finetune: 10.0, from_scratch: "ln(vocab_size) / (1 - 1)"}',
            "from_scratch",
            "TG136",
            "ln(vocab_size) / (1 - 1)",
        ),
    ],
)
def test_a_regime_keyed_threshold_is_checked_per_regime(
    tmp_path: Path, cap: str, regime: str, code: str, starts: str
) -> None:
    path = write(tmp_path, cap)
    finding = only(path)
    assert (finding.code, finding.line, finding.field) == (code, CAP_LINE, f"{FIELD}.{regime}")
    assert cap_line(path)[finding.column - 1 :].startswith(starts)


def test_a_second_threshold_field_is_located_too(tmp_path: Path) -> None:
    finding = only(write(tmp_path, "10.0", ratio='"2 * exp(1e3)"'))
    assert (finding.code, finding.line, finding.column) == ("TG136", CAP_LINE + 1, 20 + 1 + 4)
    assert finding.field == "invariants[0].params.ratio_limit"


@pytest.mark.parametrize(
    "cap",
    [
        "10.0",
        "1e308",  # the largest finite numbers are numbers
        '"1e308 * 1"',
        '"2 * ln(vocab_size)"',
        '"ln(vocab_size) * 10 ** 3 + exp(2) - sqrt(4) / 2"',
        '"max(ln(vocab_size), 2 ** 1000 / 2 ** 990)"',
        '"vocab_size / 0.5"',
        '{finetune: "10.0", from_scratch: "2 * ln(vocab_size)"}',
    ],
)
def test_finite_thresholds_keep_validating(tmp_path: Path, cap: str) -> None:
    path = write(tmp_path, cap)
    assert load_contract(path).contract is not None
    assert findings(path) == []


def test_cli_reports_the_location_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, '"2 * ln(vocab_size) + ln(0)"')
    result = CliRunner().invoke(cli, ["validate", "--root", str(REPO), str(path)])
    assert result.exit_code == 1, result.output
    column = CAP_COLUMN + 1 + len("2 * ln(vocab_size) + ")
    assert f"{path}:{CAP_LINE}:{column}: error TG136 [{FIELD}]: " in result.stdout


def test_check_constants_points_inside_the_text() -> None:
    """The API the loader uses: the column is of the innermost failing constant."""
    with pytest.raises(FormulaError) as info:
        check_constants(Formula.parse("x + 2 * (3 + ln(1 - 1))").tree)
    assert (info.value.code, info.value.column) == ("formula-constant", 13)
    with pytest.raises(FormulaError) as info:
        check_constants(Formula.constant(float("inf")).tree)
    assert (info.value.code, info.value.column) == ("formula-not-finite", 0)
    check_constants(Formula.parse("x ** 2 + 3 * ln(7) + 1e300 * 1e8").tree)  # all finite


@pytest.mark.parametrize(
    ("text", "code", "column"),
    [
        ("gap >= 1 and z < exp(1000)", "formula-constant", 17),
        ("gap >= 1 or z < inf", "formula-not-finite", 16),
        ("ä > 1 and z < 1/0", "formula-constant", 14),  # a character column, not a byte one
        ("not (gap >= 1e400)", "formula-not-finite", 12),
    ],
)
def test_a_decision_predicate_gets_the_same_checks(text: str, code: str, column: int) -> None:
    adapter: TypeAdapter[Predicate] = TypeAdapter(PredicateField)
    with pytest.raises(ValidationError) as info:
        adapter.validate_python(text)
    (err,) = info.value.errors()
    assert (err["ctx"]["code"], err["ctx"]["column"]) == (code, column)


def test_a_finite_decision_predicate_still_parses() -> None:
    adapter: TypeAdapter[Predicate] = TypeAdapter(PredicateField)
    text = "gap >= 1e3 * ln(2) and not (z < -exp(2))"
    assert adapter.validate_python(text).source == text


# A value YAML types differently than it reads: a quoted date is text, not a date.


def test_a_quoted_changelog_date_says_to_unquote_it(tmp_path: Path) -> None:
    path = write(tmp_path, "10.0", date='"2026-04-22"')
    finding = only(path)
    assert (finding.code, finding.line, finding.column) == ("TG100", 6, 28)
    assert finding.field == "changelog[0].date"
    assert finding.message == (
        "Input should be a valid date (got '2026-04-22') — YAML reads a quoted date as text: "
        "write the date unquoted: date: 2026-04-22"
    )
    result = CliRunner().invoke(cli, ["validate", "--root", str(REPO), str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:6:28: error TG100 [changelog[0].date]: " in result.stdout
    assert "write the date unquoted: date: 2026-04-22" in result.stdout


@pytest.mark.parametrize("date", ["2026-13-01", '"2026-13-01"', '"April 22"', "20260422"])
def test_a_date_that_is_no_date_gets_no_unquote_hint(tmp_path: Path, date: str) -> None:
    finding = only(write(tmp_path, "10.0", date=date))
    assert (finding.code, finding.field) == ("TG100", "changelog[0].date")
    assert "unquoted" not in finding.message


EXPRESSIONS = [  # (predicate, code, the text the finding's column starts)
    pytest.param('"tokens_per_sec >= exp(1000)"', "TG136", "exp(1000)", id="overflow"),
    pytest.param('"tokens_per_sec >= 2 * inf"', "TG135", "inf", id="inf"),
    pytest.param(
        '"tokens_per_sec / (3 - 3) >= 1"', "TG136", "tokens_per_sec / (3 - 3)", id="zero-divisor"
    ),
]


@pytest.mark.parametrize(("predicate", "code", "starts"), EXPRESSIONS)
def test_an_expression_predicate_is_checked_when_validated(
    tmp_path: Path, predicate: str, code: str, starts: str
) -> None:
    """The expression kind parses its own predicate; validation folds its constants."""
    path = write_expression(tmp_path, predicate)
    finding = only(path)  # `inf` is reported once, as TG135, not also as undeclared (TG131)
    assert (finding.code, finding.line) == (code, CAP_LINE)
    assert finding.field == "invariants[0].params.predicate"
    assert text_from(path, finding.line, finding.column).startswith(starts), finding.column


def test_a_finite_expression_predicate_stays_clean(tmp_path: Path) -> None:
    assert findings(write_expression(tmp_path, '"tokens_per_sec >= exp(2)"')) == []
