"""Both YAML paths give the same data, locations, duplicates and errors.

Loading parses with libyaml (PyYAML's C loader) when it is installed and falls back to the
pure-Python loader when it is not, when the text holds a tab or might nest deeply, and when
the C path fails (so every error is worded by the pure-Python loader). The location tests
of :mod:`.test_broken_contracts` run here again with the C loader taken away.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from traingate.contract import loading
from traingate.contract.loading import LoadError, compose_located, load_contract

from . import test_broken_contracts as broken

REPO = Path(__file__).resolve().parents[2]
YAML_FILES = sorted(
    p
    for folder in (REPO / "contracts", REPO / "tests" / "fixtures")
    for p in folder.rglob("*.y*ml")
)
HAS_LIBYAML = loading.CLoader is not None
needs_libyaml = pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML built without libyaml")


@pytest.fixture
def pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading as on a PyYAML without its C extension."""
    monkeypatch.setattr(loading, "CLoader", None)


def _parsed(text: str) -> tuple:
    try:
        located = compose_located(text)
    except LoadError as exc:
        return ("LoadError", str(exc))
    return (located.data, located.values, located.keys, located.duplicates)


@pytest.mark.usefixtures("pure_python")
@pytest.mark.parametrize("name", broken._params())
def test_fallback_reports_exactly_the_expected_findings(name: str) -> None:
    broken.test_api_reports_exactly_the_expected_findings(name)


@pytest.mark.usefixtures("pure_python")
@pytest.mark.parametrize(
    "name", ["duplicate_key.yaml", "params_unknown_key.yaml", "formula_syntax.yaml"]
)
def test_fallback_cli_points_at_file_line_column(name: str) -> None:
    broken.test_cli_text_points_at_file_line_column(name)


@pytest.mark.usefixtures("pure_python")
def test_fallback_words_syntax_errors_and_locates_documents() -> None:
    broken.test_unparsable_input_exits_2_with_one_line(
        "yaml_syntax_error.yaml",
        "yaml_syntax_error.yaml:4:7: YAML syntax error: expected ',' or ']', but got ':'",
    )
    broken.test_non_mapping_documents_are_findings("top_level_list.yaml", "a list")


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_both_paths_agree_on_every_yaml_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    fast = _parsed(text)
    monkeypatch.setattr(loading, "CLoader", None)
    assert _parsed(text) == fast


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\nb:\n  c: 1\n  c: [1, {d: 2, d: 3}]\n",  # duplicates, nested
        "a: &x {b: 1}\nc: *x\nd: 'q'\ne: \"é → 𝛑\"\n",  # aliases, quoting, wide characters
        "a: [1,\t2]\n",  # a tab libyaml accepts and PyYAML refuses
        "a: [1, 2\n",  # unterminated: the wording is the pure-Python loader's
        "a: 2026-02-30\nb: 0x1F\nc: ~\nd: yes\n? e\n",  # odd scalars
        "x: 1\r\ny:\r\n  - 2\r\n",  # CRLF line ends
        "\ufeffa: 1\n",  # BOM
        "a: |\n  two\n  lines\nb: >\n  folded\n",
    ],
)
def test_both_paths_agree_on_tricky_text(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _parsed(text)
    monkeypatch.setattr(loading, "CLoader", None)
    assert _parsed(text) == fast


def test_duplicate_key_location_without_libyaml(pure_python: None, tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("contract: C-X\ncontract: C-Y\n", encoding="utf-8")
    (dup,) = [f for f in load_contract(path).findings if f.code == "TG103"]
    assert (dup.line, dup.column, dup.field) == (2, 1, "contract")


@needs_libyaml
def test_the_c_loader_parses_plain_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[type] = []
    real = loading._compose

    def spy(loader_class: type, text: str) -> loading.Located:
        used.append(loader_class)
        return real(loader_class, text)

    monkeypatch.setattr(loading, "_compose", spy)
    compose_located((REPO / "contracts" / "training-loop-pretrain-v1.yaml").read_text("utf-8"))
    assert used == [loading.CLoader]
    used.clear()
    with pytest.raises(LoadError, match="found character '\\\\t'"):
        compose_located("a: [1,\t2]\n")  # a tab: straight to the pure-Python loader
    assert used == [yaml.SafeLoader]
    used.clear()
    with pytest.raises(LoadError, match="expected ',' or ']'"):
        compose_located("a: [1, 2\n")  # the C path fails, the pure-Python one words it
    assert used == [loading.CLoader, yaml.SafeLoader]


def test_deep_nesting_never_reaches_libyaml() -> None:
    """libyaml's composer recurses without a limit: 100,000 `[` crash the interpreter."""
    code = (
        "from traingate.contract.loading import LoadError, compose_located\n"
        "try:\n"
        "    compose_located('[' * 100_000 + ']' * 100_000)\n"
        "except LoadError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nested too deeply" in out.stdout
