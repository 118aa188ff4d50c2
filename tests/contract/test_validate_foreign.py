"""``contracts validate`` on a file in another format: one pointer at the top, then findings
that repeat across entries grouped on one line each (not a wall of 95), each still located
with its stable code; a missing ``check:`` lists the known kinds.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli

from traingate.contract.findings import CODES, Finding
from traingate.contract.kinds import KINDS
from traingate.contract.triage import FOREIGN_CODE, foreign_format, group_findings
from traingate.contract.validation import validate_paths

REPO = Path(__file__).resolve().parents[2]
PV = REPO / "tests" / "fixtures" / "pv" / "pretrain-v2.yaml"
POINTER = (
    "this looks like a pv-format contract (contract_id, metadata.changelog); convert it "
    f"with `contracts import {PV} --from pv`"
)


def validate(*args: str):
    return CliRunner().invoke(cli, ["validate", "--root", str(REPO), *args])


def test_the_pv_fixture_gets_the_pointer_once_at_the_top_then_grouped_findings() -> None:
    result = validate(str(PV))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{PV}: error {FOREIGN_CODE}: {POINTER}"
    assert sum(FOREIGN_CODE in line for line in lines) == 1
    report = validate_paths([PV], root=REPO)
    assert len(lines) - 1 < len(report.findings) / 2  # grouped: far fewer lines than findings
    title = [line for line in lines if "[invariants[*].title]" in line]
    assert title == [
        f"{PV}:19:5: error TG102 [invariants[*].title]: required field `title` is missing "
        "(8 findings like it, at 19:5, 24:5, 30:5, …)"
    ]
    assert (
        lines[-1]
        == f"1 contracts · 0 invariants · 0 gates · {len(report.errors)} errors · 0 warnings"
    )


def test_a_missing_check_lists_the_known_kinds_sorted() -> None:
    report = validate_paths([PV], root=REPO)
    checks = [f for f in report.findings if f.field.endswith("].check")]
    assert len(checks) == 8
    known = ", ".join(sorted(KINDS))
    assert {f.message for f in checks} == {
        f"required field `check` is missing (known kinds: {known})"
    }
    assert {"metrics_present", "convergence"} <= set(KINDS)


def test_json_and_github_keep_every_finding_with_the_pointer_once() -> None:
    report = validate_paths([PV], root=REPO)
    payload = json.loads(validate("--format", "json", str(PV)).stdout)
    assert len(payload["findings"]) == len(report.findings)
    codes = [f["code"] for f in payload["findings"]]
    assert codes.count(FOREIGN_CODE) == 1 and codes[0] == FOREIGN_CODE
    assert all(code in CODES for code in codes)
    annotations = [line for line in validate("--format", "github", str(PV)).stdout.splitlines()
                   if line.startswith("::")]  # fmt: skip
    assert len(annotations) == len(report.findings)


def test_a_traingate_contract_gets_no_pointer() -> None:
    assert foreign_format({"contract": "C-X", "contract_id": "C-X"}, "x.yaml") is None
    assert foreign_format({"title": "t"}, "x.yaml") is None
    assert foreign_format(["contract_id"], "x.yaml") is None
    pointer = foreign_format({"contract_id": "C-X"}, "x.yaml")
    assert pointer is not None and pointer.message.startswith(
        "this looks like a pv-format contract (contract_id); "
    )


def finding(line: int, field: str, message: str, code: str = "TG102") -> Finding:
    return Finding(code, "error", message, "f.yaml", line, 5, field)


def test_only_a_finding_repeated_three_times_is_grouped() -> None:
    twice = [finding(n, f"invariants[{n}].at", "required field `at` is missing") for n in (1, 2)]
    assert [g.text() for g in group_findings(twice)] == [f.text() for f in twice]
    thrice = [
        finding(n, f"invariants[{n}]", f"INV-A-00{n} names no falsifier", "TG151")
        for n in (1, 2, 3)
    ]
    (group,) = group_findings(thrice)
    assert group.text() == (
        "f.yaml:1:5: error TG151 [invariants[*]]: INV-A-001 names no falsifier "
        "(3 findings like it, at 1:5, 2:5, 3:5)"
    )


def test_groups_keep_the_order_of_their_first_finding() -> None:
    found = [
        finding(1, "gates[0].requires", "required field `requires` is missing"),
        finding(2, "title", "required field `title` is missing"),
        finding(3, "gates[1].requires", "required field `requires` is missing"),
        finding(4, "gates[2].requires", "required field `requires` is missing"),
        finding(5, "gates[3].requires", "required field `requires` is missing"),
    ]
    groups = group_findings(found)
    assert [len(g.members) for g in groups] == [4, 1]
    assert groups[0].text().endswith("(4 findings like it, at 1:5, 3:5, 4:5, …)")


def test_a_draft_without_falsifiers_is_a_warning_an_active_one_an_error(tmp_path: Path) -> None:
    text = (REPO / "tests" / "fixtures" / "broken" / "no_falsifier.yaml").read_text()
    assert "status: active" in text
    (active,) = validate_paths(
        [REPO / "tests" / "fixtures" / "broken" / "no_falsifier.yaml"]
    ).findings
    assert (active.code, active.severity) == ("TG151", "error")
    draft = tmp_path / "draft.yaml"
    draft.write_text(text.replace("status: active", "status: draft"), encoding="utf-8")
    (warned,) = validate_paths([draft]).findings
    assert (warned.code, warned.severity) == ("TG151", "warning")
    assert warned.message.endswith("(a draft may lack one for now; status: active may not)")


def test_verify_on_the_pv_fixture_refuses_with_the_pointer_and_grouped_errors() -> None:
    result = CliRunner().invoke(cli, ["verify", "--root", str(REPO), str(PV)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{PV}: error {FOREIGN_CODE}: {POINTER}"
    errors = len(validate_paths([PV], root=REPO).errors)
    assert lines[-1] == f"contracts: {errors} validation errors; fix them before verify"
    assert len(lines) - 1 < errors / 2
