"""Every broken fixture yields exactly its finding, at the exact line, column and field.

One table drives the Python API (``validate_paths``) and the ``contracts validate`` CLI in
its three output formats; a fixture without a row (or a row without a fixture) fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
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


E = Expected
CASES: dict[str, list[Expected]] = {
    "duplicate_key.yaml": [E("TG103", 6, 1, "title", "duplicate key `title`")],
    "near_miss_gate_block.yaml": [
        E("TG101", 18, 1, "gate", "unknown key `gate` (did you mean `gates`?)")
    ],
    "near_miss_parameters_block.yaml": [
        E("TG101", 8, 1, "paramters", "did you mean `parameters`?")
    ],
    "unknown_check_kind.yaml": [
        E("TG120", 11, 12, "invariants[0].check", "did you mean `non_divergence`?")
    ],
    "params_wrong_type.yaml": [
        E("TG121", 15, 20, "invariants[0].params.ratio_limit", "not a boolean")
    ],
    "params_unknown_key.yaml": [
        E("TG121", 15, 7, "invariants[0].params.ratio_limt", "did you mean `ratio_limit`?")
    ],
    "params_missing_required.yaml": [
        E("TG121", 14, 7, "invariants[0].params.epoch_zero_cap", "`epoch_zero_cap` is missing")
    ],
    "formula_import_attack.yaml": [
        E("TG130", 14, 24, "invariants[0].params.epoch_zero_cap", "only calls of the built-in")
    ],
    "formula_attribute_access.yaml": [
        E("TG130", 14, 27, "invariants[0].params.epoch_zero_cap", "attribute access")
    ],
    "formula_syntax.yaml": [
        E("TG130", 15, 21, "invariants[0].params.ratio_limit", "was never closed")
    ],
    "formula_unknown_function.yaml": [
        E("TG132", 14, 28, "invariants[0].params.epoch_zero_cap", "unknown function 'lnn'")
    ],
    "formula_undeclared_symbol.yaml": [
        E(
            "TG131",
            16,
            76,
            "invariants[0].params.epoch_zero_cap.from_scratch",
            "names `vocab`, which is not a declared parameter",
        )
    ],
    "parameter_unused.yaml": [
        E("TG133", 9, 3, "parameters.vocab_size", "`vocab_size` is declared", "warning")
    ],
    "invariant_not_gated.yaml": [
        E(
            "TG152",
            18,
            9,
            "invariants[1].id",
            "INV-FIX-UNGATED-002 is required by no gate",
            "warning",
        )
    ],
    "regime_missing_from_scratch.yaml": [
        E("TG134", 14, 23, "invariants[0].params.epoch_zero_cap", "missing `from_scratch`")
    ],
    "regime_unknown_key.yaml": [
        E("TG134", 17, 9, "invariants[0].params.epoch_zero_cap.pretrain", "unknown regime")
    ],
    "version_not_semver.yaml": [
        E("TG110", 3, 10, "version", "version `1.2` is not semver"),
        E("TG110", 7, 15, "changelog[0].version", "changelog version `1.2` is not semver"),
    ],
    "version_is_number.yaml": [E("TG100", 3, 10, "version", "valid string (got 1.2)")],
    "changelog_mismatch.yaml": [
        E("TG111", 7, 15, "changelog[0].version", "is 1.0.0 but version is 1.1.0")
    ],
    "changelog_bad_date.yaml": [E("TG100", 7, 28, "changelog[0].date", "date")],
    "gate_requires_unknown.yaml": [
        E("TG141", 20, 37, "gates[0].requires[1]", "requires unknown invariant INV-FIX-GATEREQ-002")
    ],
    "gate_evidence_missing.yaml": [
        E("TG150", 24, 9, "gates[0].evidence[1]", "`TestNoSuchClass::test_x` is not a test")
    ],
    "falsifier_missing_test.yaml": [
        E("TG150", 18, 9, "invariants[0].falsified_by[1]", "`test_cap_was_never_written` is not")
    ],
    "falsifier_missing_file.yaml": [
        E(
            "TG150",
            16,
            20,
            "invariants[0].falsified_by[0]",
            "`falsifiers/test_no_such_file.py` does not exist",
        )
    ],
    "falsifier_name_too_long.yaml": [
        E("TG150", 17, 9, "invariants[0].falsified_by[0]", "cannot be read (File name too long)")
    ],
    "no_falsifier.yaml": [E("TG151", 9, 5, "invariants[0]", "names no falsifier")],
    "test_id_pattern.yaml": [
        E("TG100", 17, 9, "invariants[0].falsified_by[0]", "should match pattern")
    ],
    "bad_status_enum.yaml": [E("TG100", 5, 9, "status", "(got 'released')")],
    "bad_at_point.yaml": [E("TG100", 12, 9, "invariants[0].at", "(got 'epoch')")],
    "at_point_unsupported.yaml": [
        E("TG122", 12, 9, "invariants[0].at", "runs at validation, not `step`")
    ],
    "missing_required_field.yaml": [
        E("TG102", 9, 5, "invariants[0].on_violation", "required field `on_violation` is missing")
    ],
    "invariant_id_pattern.yaml": [E("TG100", 9, 9, "invariants[0].id", "(got 'INV-FIX-IDPAT-1')")],
    "duplicate_invariant_id.yaml": [
        E("TG140", 18, 9, "invariants[1].id", "invariant id INV-FIX-DUPID-001 is also defined")
    ],
}


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
    proc = subprocess.run(
        [*cmd, str(hostile)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
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
