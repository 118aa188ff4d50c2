"""Every broken fixture yields exactly its finding, at the exact line, column and field.

One table, ``tests/fixtures/broken_expected.yaml``, drives the Python API
(``validate_paths``) and the ``contracts validate`` CLI in its three output formats; a
fixture without a row (or a row without a fixture) fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli

from traingate.contract.findings import CODES
from traingate.contract.validation import validate_paths

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
BROKEN = FIXTURES / "broken"
PAIRS = FIXTURES / "broken_pairs"
SYNTAX = FIXTURES / "syntax"


@dataclass(frozen=True)
class Expected:
    """One finding a fixture must produce: where it points and a piece of its message."""

    code: str
    line: int
    column: int
    field: str
    message: str
    severity: str = "error"


EXPECTED = re.compile(r"(TG\d+) (\d+):(\d+) (\S+): (.*?)( \(warning\))?")


def read_expected(path: Path) -> dict[str, list[Expected]]:
    """The table in ``broken_expected.yaml``: fixture name → its findings, each written
    ``CODE LINE:COLUMN FIELD: message piece`` (`` (warning)`` at the end for a warning)."""
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases: dict[str, list[Expected]] = {}
    for name, rows in table.items():
        for row in rows:
            match = EXPECTED.fullmatch(row)
            assert match, f"{path.name}: {name}: cannot read {row!r}"
            code, line, column, field, message, warning = match.groups()
            severity = "warning" if warning else "error"
            expected = Expected(code, int(line), int(column), field, message, severity)
            cases.setdefault(name, []).append(expected)
    return cases


CASES = read_expected(FIXTURES / "broken_expected.yaml")


def _params() -> list:
    return [pytest.param(name, id=name.removesuffix(".yaml")) for name in sorted(CASES)]


def _key(f) -> tuple:
    return (f.code, f.severity, f.line, f.column, f.field)


def _expected_keys(name: str) -> list[tuple]:
    return sorted((e.code, e.severity, e.line, e.column, e.field) for e in CASES[name])


def test_every_fixture_has_a_row_and_every_row_a_fixture() -> None:
    on_disk = {p.name for p in BROKEN.glob("*.yaml")}
    assert on_disk == set(CASES)
    assert len(on_disk) >= 18
    assert all(e.code in CODES for rows in CASES.values() for e in rows)


@pytest.mark.parametrize("name", _params())
def test_api_reports_exactly_the_expected_findings(name: str) -> None:
    report = validate_paths([BROKEN / name])
    assert report.fatal == []
    assert sorted(_key(f) for f in report.findings) == _expected_keys(name)
    for exp in CASES[name]:
        (match,) = [f for f in report.findings if _key(f)[2:] == (exp.line, exp.column, exp.field)]
        assert exp.message in match.message
        assert match.file == str(BROKEN / name)


@pytest.mark.parametrize("name", _params())
def test_cli_text_points_at_file_line_column(name: str) -> None:
    path = BROKEN / name
    result = CliRunner().invoke(cli, ["validate", str(path)])
    errors = [e for e in CASES[name] if e.severity == "error"]
    assert result.exit_code == (1 if errors else 0), result.output
    for exp in CASES[name]:
        head = f"{path}:{exp.line}:{exp.column}: {exp.severity} {exp.code} [{exp.field}]: "
        assert head in result.stdout
    warnings = len(CASES[name]) - len(errors)
    assert result.stdout.rstrip().endswith(f"{len(errors)} errors · {warnings} warnings")


@pytest.mark.parametrize("name", _params())
def test_cli_json_carries_the_same_findings(name: str) -> None:
    path = BROKEN / name
    result = CliRunner().invoke(cli, ["validate", "--format", "json", str(path)])
    payload = json.loads(result.stdout)
    got = sorted(
        (f["code"], f["severity"], f["line"], f["column"], f["field"]) for f in payload["findings"]
    )
    assert got == _expected_keys(name)
    assert all(f["file"] == str(path) for f in payload["findings"])
    has_errors = any(e.severity == "error" for e in CASES[name])
    assert payload["ok"] is (not has_errors)
    assert payload["summary"]["errors"] == sum(e.severity == "error" for e in CASES[name])
    assert result.exit_code == (1 if has_errors else 0)


@pytest.mark.parametrize("name", _params())
def test_cli_github_annotations(name: str) -> None:
    path = BROKEN / name
    result = CliRunner().invoke(cli, ["validate", "--format", "github", str(path)])
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(annotations) == len(CASES[name])
    for exp in CASES[name]:
        head = (
            f"::{exp.severity} file={path},line={exp.line},col={exp.column},"
            f"title={exp.code} {exp.field}::"
        )
        assert any(a.startswith(head) for a in annotations), (head, annotations)


def test_warning_only_fixture_fails_under_strict() -> None:
    path = BROKEN / "parameter_unused.yaml"
    assert CliRunner().invoke(cli, ["validate", str(path)]).exit_code == 0
    assert CliRunner().invoke(cli, ["validate", "--strict", str(path)]).exit_code == 1


def test_near_miss_block_name_suggests_the_real_one() -> None:
    path = BROKEN / "near_miss_gate_block.yaml"
    (finding,) = validate_paths([path]).findings
    assert finding.message == "unknown key `gate` (did you mean `gates`?)"
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert f"{path}:18:1: error TG101 [gate]: unknown key `gate` (did you mean `gates`?)" in (
        result.stdout
    )


def test_import_attack_is_located_and_never_executed(tmp_path: Path, monkeypatch) -> None:
    path = BROKEN / "formula_import_attack.yaml"
    calls: list[object] = []
    with monkeypatch.context() as patch:
        patch.setattr(os, "system", lambda *a: calls.append(a) or 0)
        patch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
        (finding,) = validate_paths([path]).findings
    assert calls == []
    line = path.read_text().splitlines()[finding.line - 1]
    assert line[finding.column - 1 :].startswith("__import__('os').system('x')")
    # End to end, in a fresh interpreter: a payload that would leave a mark leaves none.
    marker = tmp_path / "pwned"
    hostile = tmp_path / "contract.yaml"
    hostile.write_text(
        path.read_text().replace("system('x')", f"system('touch {marker}')"), encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "cli")])}
    cmd = [sys.executable, "-m", "traingate_cli.contracts_cmd", "validate", "--root", str(REPO)]
    cmd.append(str(hostile))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"{hostile}:14:24: error TG130" in proc.stdout
    assert not marker.exists()


def test_unknown_regime_key_message_names_the_key() -> None:
    (finding,) = validate_paths([BROKEN / "regime_unknown_key.yaml"]).findings
    assert "{key" not in finding.message
    assert "pretrain" in finding.message


def test_each_pair_file_is_clean_alone() -> None:
    for path in sorted(PAIRS.glob("*.yaml")):
        report = validate_paths([path])
        assert report.findings == [] and report.fatal == [], path


def test_cross_file_duplicates_point_at_the_second_file() -> None:
    report = validate_paths([PAIRS])
    second = str(PAIRS / "second.yaml")
    got = sorted((f.code, f.file, f.line, f.column, f.field) for f in report.findings)
    assert got == [
        ("TG140", second, 9, 9, "invariants[0].id"),
        ("TG161", second, 2, 11, "contract"),
    ]
    messages = " ".join(f.message for f in report.findings)
    assert "also defined in " + str(PAIRS / "first.yaml") in messages
    result = CliRunner().invoke(cli, ["validate", str(PAIRS)])
    assert result.exit_code == 1
    assert f"{second}:2:11: error TG161" in result.stdout
    assert f"{second}:9:9: error TG140" in result.stdout


def test_all_fixtures_together_add_up_to_their_rows() -> None:
    """Validated in one run, the fixtures' ids are distinct: nothing is added or lost."""
    files = [BROKEN / n for n in sorted(CASES)]
    report = validate_paths(files)
    got = sorted((Path(f.file).name, *_key(f)) for f in report.findings)
    want = sorted((n, *k) for n in CASES for k in _expected_keys(n))
    assert got == want


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "yaml_syntax_error.yaml",
            "yaml_syntax_error.yaml:4:7: YAML syntax error: expected ',' or ']', but got ':'",
        ),
        ("not_utf8.yaml", "not_utf8.yaml: not UTF-8 text (byte 33)"),
    ],
)
def test_unparsable_input_exits_2_with_one_line(name: str, message: str) -> None:
    path = SYNTAX / name
    report = validate_paths([path])
    assert len(report.fatal) == 1 and report.fatal[0].endswith(message)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"contracts: {path}{message.removeprefix(name)}"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "what"), [("empty.yaml", "empty"), ("top_level_list.yaml", "a list")]
)
def test_non_mapping_documents_are_findings(name: str, what: str) -> None:
    path = SYNTAX / name
    (finding,) = validate_paths([path]).findings
    assert (finding.code, finding.line, finding.column) == ("TG100", 1, 1)
    assert finding.message == f"a contract file must be a mapping, this one is {what}"
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:1:1: error TG100: a contract file must be a mapping" in result.stdout
