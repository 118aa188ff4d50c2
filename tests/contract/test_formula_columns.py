"""Formula and predicate columns count characters, never UTF-8 bytes.

Python's ``ast`` reports byte offsets, so after a non-ASCII character (``ä``, ``π``, ``日``)
a column taken from it points past the character it means. Every column a formula or a
predicate reports, and so every finding's column in the YAML, is a character column.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from traingate.contract.formula import Formula, FormulaError
from traingate.contract.predicate import parse_predicate
from traingate.contract.validation import validate_paths

from .cap_contract import CAP_LINE, FIELD, REPO, write


def pointed_at(tmp_path: Path, cap: str) -> list[tuple[str, str]]:
    """(code, text from the reported column on) for each error on the cap's line."""
    path = write(tmp_path, cap)
    line = path.read_text(encoding="utf-8").splitlines()[CAP_LINE - 1]
    report = validate_paths([path], root=REPO)
    assert report.fatal == []
    errors = report.errors
    assert all(f.line == CAP_LINE and f.field.startswith(FIELD) for f in errors), errors
    return [(f.code, line[f.column - 1 :]) for f in errors]


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("ä * 2 + lnn(3)", 8),
        ("π * r + lnn(3)", 8),
        ("日本 + lnn(1)", 5),  # three bytes a character
        ("(ä +\n lnn(1))", 6),  # a column counts from the start of the text, across lines
    ],
)
def test_an_error_after_a_non_ascii_character_has_its_character_column(
    text: str, column: int
) -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse(text)
    assert info.value.code == "formula-unknown-function"
    assert info.value.column == column
    assert text[column:].startswith("lnn")


def test_symbol_columns_are_character_columns() -> None:
    formula = Formula.parse("  ä * ln(vocab_size) + ünknown")
    assert formula.symbol_columns() == {"ä": 2, "vocab_size": 9, "ünknown": 23}
    with pytest.raises(FormulaError) as info:
        formula.evaluate({"ä": 1.0, "vocab_size": 2.0})
    assert (info.value.code, info.value.column) == ("formula-unknown-symbol", 23)


def test_a_forbidden_construct_after_non_ascii_has_its_character_column() -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse("größe + 'x'")
    assert info.value.column == 8


def test_a_syntax_error_after_non_ascii_has_its_character_column() -> None:
    with pytest.raises(FormulaError) as info:
        Formula.parse("ln(V) · 2")
    assert info.value.column == 6
    assert "·" in info.value.message


@pytest.mark.parametrize(
    ("cap", "want"),
    [
        ('"2 * ünknown + vöcab"', [("TG131", "vöcab"), ("TG131", "ünknown + vöcab")]),
        ('"ä * lnn(vocab_size)"', [("TG132", 'lnn(vocab_size)"')]),
        ('"日本 * 2 + math.pi"', [("TG130", 'math.pi"')]),
        ("{finetune: 10.0, from_scratch: \"π + 'x'\"}", [("TG130", "'x'\"}")]),
    ],
    ids=["undeclared-symbols", "unknown-function", "attribute", "regime-keyed"],
)
def test_findings_in_a_contract_point_at_the_character(
    tmp_path: Path, cap: str, want: list[tuple[str, str]]
) -> None:
    got = pointed_at(tmp_path, cap)
    assert len(got) == len(want), got
    for code, piece in want:
        assert any(c == code and rest.startswith(piece) for c, rest in got), (piece, got)


def test_predicate_columns_are_character_columns() -> None:
    predicate = parse_predicate("ä > 1 and ö * 2 < größe")
    assert predicate.symbol_columns() == {"ä": 0, "ö": 10, "größe": 18}
    with pytest.raises(FormulaError) as info:
        parse_predicate("x > 1 and ä * 2 > lnn(1)")  # the error is inside a comparison
    assert (info.value.code, info.value.column) == ("formula-unknown-function", 18)
    with pytest.raises(FormulaError) as info:
        parse_predicate("ä > 1 and ö")  # the error is at the boolean layer
    assert info.value.column == 10
