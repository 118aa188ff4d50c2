"""``check_run`` and ``contracts check`` on run dirs written by a real Guard."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import check

from traingate import Guard, InvariantViolation
from traingate.ci.render import render_github, render_json, render_junit, render_text
from traingate.ci.runcheck import RunDirError, check_run
from traingate.contract.regime import Finetune, FromScratch

from .conftest import NON_DIVERGENCE, VOCAB_SIZE, contract_yaml, expression, gate, invariant

CONTRACT = contract_yaml(
    "C-TEST-RUN",
    "1.0.0",
    "Run-check test contract",
    [
        invariant("INV-TEST-005", "Non-divergence", "non_divergence", "validation", NON_DIVERGENCE),
        invariant("INV-TEST-001", "Finite loss", "finite", "step", {"observations": ["loss"]}),
        expression(
            "INV-TEST-006",
            "Throughput is measured",
            "step",
            "tokens_per_sec >= 0",
            "tokens_per_sec",
        ),
    ],
    [
        gate("GATE-TEST-005", ["INV-TEST-005"]),
        gate("GATE-TEST-001", ["INV-TEST-001"]),
        gate("GATE-TEST-006", ["INV-TEST-006"], ship_blocking=False),
    ],
    parameters=VOCAB_SIZE,
)

WARN_CONTRACT = contract_yaml(
    "C-TEST-WARN",
    "2.1.0",
    "A warn-only invariant behind a ship-blocking gate",
    [
        expression(
            "INV-WARN-001", "Validation loss stays small", "validation", "val_loss <= 5", "val_loss"
        )
    ],
    [gate("GATE-WARN-001", ["INV-WARN-001"])],
)


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "contracts" / "run.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT)
    return path


def run_passing(contract: Path, run_dir: Path) -> Path:
    """A from-scratch run (vocab 50257) near ln V that improves: everything evaluated."""
    with Guard([contract], regime=FromScratch(50257), run_dir=run_dir) as guard:
        for step in range(6):
            guard.step(step, loss=10.9 - 0.2 * step, tokens_per_sec=1000.0)
        guard.validation(0, val_loss=10.5)
        for step in range(6, 12):
            guard.step(step, loss=9.5 - 0.1 * step, tokens_per_sec=1000.0)
        guard.validation(1, val_loss=8.7)
    return run_dir


def run_cold_start_as_finetune(contract: Path, run_dir: Path) -> Path:
    """Seed 003: a cold start (val loss 10.8 ≈ ln 50257) run under the finetune cap 10."""
    with (
        pytest.raises(InvariantViolation),
        Guard([contract], regime=Finetune(), run_dir=run_dir) as g,
    ):
        g.step(0, loss=10.9, tokens_per_sec=900.0)
        g.validation(0, val_loss=10.8)
    return run_dir


def run_validation_only(contract: Path, run_dir: Path) -> Path:
    """No step observed: the ship-blocking step invariant is never evaluated."""
    with Guard([contract], regime=FromScratch(50257), run_dir=run_dir) as guard:
        guard.validation(0, val_loss=10.5)
    return run_dir


def test_passing_run_exits_0_with_a_table(contract: Path, tmp_path: Path) -> None:
    result = check_run(run_passing(contract, tmp_path / "run"))
    assert result.ok and result.exit_code == 0, result.failures
    assert {inv.id: inv.status for inv in result.invariants} == {
        "INV-TEST-005": "pass",
        "INV-TEST-001": "pass",
        "INV-TEST-006": "pass",
    }
    text = render_text(result)
    row = next(line for line in text.splitlines() if line.startswith("INV-TEST-005"))
    assert "pass" in row and "ship-blocking" in row and "C-TEST-RUN@1.0.0" in row
    assert "(must be <=" in row  # worst observed vs its limit
    assert text.splitlines()[-1].startswith("OK: 3/3 invariants passed")


def test_cold_start_under_finetune_cap_fails_naming_the_invariant(
    contract: Path, tmp_path: Path
) -> None:
    result = check_run(run_cold_start_as_finetune(contract, tmp_path / "run"))
    assert result.exit_code == 1
    inv = next(i for i in result.invariants if i.id == "INV-TEST-005")
    assert inv.status == "fail" and inv.outcome == "fail"
    assert inv.worst_text() == "10.8 (must be <= 10)"
    assert any("aborted by INV-TEST-005 at step 0, epoch 0" in f for f in result.failures)
    assert inv.first_violation is not None and inv.first_violation["limit"] == 10.0


def test_never_evaluated_ship_blocking_invariant_is_not_a_pass(
    contract: Path, tmp_path: Path
) -> None:
    result = check_run(run_validation_only(contract, tmp_path / "run"))
    by_id = {inv.id: inv for inv in result.invariants}
    assert by_id["INV-TEST-005"].outcome == "pass"
    assert by_id["INV-TEST-001"].status == "not_evaluated"
    assert by_id["INV-TEST-001"].outcome == "fail"
    assert by_id["INV-TEST-006"].outcome == "skip"  # advisory: reported, not failing
    assert result.exit_code == 1
    assert result.failures == ["INV-TEST-001: never evaluated (no step observation reached it)"]
    gates = {g.id: g.status for g in result.gates}
    assert gates == {
        "GATE-TEST-005": "pass",
        "GATE-TEST-001": "not_evaluated",
        "GATE-TEST-006": "not_evaluated",
    }


def test_zero_evaluations_fail(contract: Path, tmp_path: Path) -> None:
    with Guard([contract], regime=Finetune(), run_dir=tmp_path / "run"):
        pass
    result = check_run(tmp_path / "run")
    assert result.exit_code == 1
    assert "the run evaluated zero invariants: nothing was checked" in result.failures


def test_crashed_run_fails(contract: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Guard([contract], run_dir=tmp_path / "run") as guard:
        guard.step(0, loss=1.0, tokens_per_sec=5.0)
        guard.validation(0, val_loss=1.0)
        raise RuntimeError("CUDA out of memory")
    result = check_run(tmp_path / "run")
    assert result.exit_code == 1
    assert "the run crashed: RuntimeError: CUDA out of memory" in result.failures


def test_warn_violation_of_a_ship_blocking_invariant_fails(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(WARN_CONTRACT)
    with Guard([path], run_dir=tmp_path / "run") as guard:
        guard.validation(0, val_loss=7.0)  # warns, the run goes on
        guard.validation(1, val_loss=4.0)
    result = check_run(tmp_path / "run")
    assert result.exit_code == 1
    assert "on_violation: warn kept the run going" in result.failures[0]
    assert [g.status for g in result.gates] == ["fail"]


def test_advisory_warning_does_not_fail(contract: Path, tmp_path: Path) -> None:
    with Guard([contract], regime=FromScratch(50257), run_dir=tmp_path / "run") as guard:
        guard.step(0, loss=10.9, tokens_per_sec=-1.0)  # a broken timer: advisory
        guard.validation(0, val_loss=10.5)
    result = check_run(tmp_path / "run")
    assert result.exit_code == 0
    assert next(i for i in result.invariants if i.id == "INV-TEST-006").outcome == "warn"
    assert "warning: INV-TEST-006" in render_text(result)
    assert "::warning title=INV-TEST-006::" in render_github(result)


def test_guard_and_check_agree_on_every_gate(contract: Path, tmp_path: Path) -> None:
    """One gate rule: the verdict the Guard writes is the one ``contracts check`` derives
    (an advisory gate whose invariant warned is ``warn`` on both sides, not ``pass``)."""
    with Guard([contract], regime=FromScratch(50257), run_dir=tmp_path / "run") as guard:
        guard.step(0, loss=10.9, tokens_per_sec=-1.0)  # INV-TEST-006 warns: advisory
        guard.validation(0, val_loss=10.5)
    written = guard.judge().gates
    derived = {g.id: g.status for g in check_run(tmp_path / "run").gates}
    assert {gate_id: g.status for gate_id, g in written.items()} == derived
    assert "warn" in derived.values()


def test_junit_is_valid_xml_with_failure_and_skipped(contract: Path, tmp_path: Path) -> None:
    result = check_run(run_validation_only(contract, tmp_path / "run"))
    root = ET.fromstring(render_junit(result))
    suite = root.find("testsuite")
    assert suite is not None
    cases = {c.get("name", "").split()[0]: c for c in suite.findall("testcase")}
    assert set(cases) == {"run", "INV-TEST-005", "INV-TEST-001", "INV-TEST-006"}
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    assert cases["INV-TEST-001"].find("failure") is not None  # ship-blocking, never evaluated
    assert cases["INV-TEST-006"].find("skipped") is not None  # advisory, never evaluated
    assert cases["INV-TEST-005"].find("failure") is None
    assert cases["INV-TEST-005"].get("classname") == "C-TEST-RUN@1.0.0"


def test_junit_run_case_fails_when_the_run_aborted(contract: Path, tmp_path: Path) -> None:
    result = check_run(run_cold_start_as_finetune(contract, tmp_path / "run"))
    suite = ET.fromstring(render_junit(result)).find("testsuite")
    assert suite is not None
    failed = {c.get("name", "").split()[0] for c in suite if c.find("failure") is not None}
    assert failed == {"run", "INV-TEST-005"}  # INV-TEST-001 saw a finite step: it passed


def test_github_annotations_escape_and_name_the_invariant(contract: Path, tmp_path: Path) -> None:
    result = check_run(run_cold_start_as_finetune(contract, tmp_path / "run"))
    lines = render_github(result).splitlines()
    inv_line = next(line for line in lines if line.startswith("::error title=INV-TEST-005::"))
    assert "epoch-0 val loss 10.8 vs cap 10" in inv_line
    assert "\n" not in inv_line
    assert any(line.startswith("::error title=traingate run::") for line in lines)


def test_json_round_trips(contract: Path, tmp_path: Path) -> None:
    result = check_run(run_cold_start_as_finetune(contract, tmp_path / "run"))
    payload = json.loads(render_json(result))
    assert payload["ok"] is False and payload["exit_code"] == 1
    assert payload["aborted_by"]["invariant"] == "INV-TEST-005"
    inv = next(i for i in payload["invariants"] if i["id"] == "INV-TEST-005")
    assert inv["worst"]["observed"] == 10.8 and inv["worst"]["limit"] == 10.0


def test_a_closed_run_whose_end_event_was_torn_off_fails(contract: Path, tmp_path: Path) -> None:
    run_dir = run_passing(contract, tmp_path / "run")
    evidence = run_dir / "evidence.jsonl"
    text = evidence.read_text()
    evidence.write_text(text[: len(text) - 25])  # the end event, torn mid-line
    result = check_run(run_dir)
    assert result.exit_code == 1
    assert any(
        "last line is torn although verdict.json says it closed" in p for p in result.problems
    )
    assert any("does not end with an end event" in p for p in result.problems)


def test_corrupt_evidence_in_the_middle_is_unreadable(contract: Path, tmp_path: Path) -> None:
    run_dir = run_passing(contract, tmp_path / "run")
    evidence = run_dir / "evidence.jsonl"
    lines = evidence.read_text().splitlines()
    lines[1] = lines[1][:10]
    evidence.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunDirError, match=r"evidence\.jsonl:2: corrupt evidence line"):
        check_run(run_dir)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"verdict\.json: corrupt JSON at line 1"),
        ("[1, 2]", r"verdict\.json: corrupt: expected a JSON object"),
        (
            '{"evaluations": 1, "invariants": {"INV-X-001": {"status": "passed", '
            '"ship_blocking": true, "evaluations": 1}}}',
            r"invariant INV-X-001 has status 'passed'",
        ),
    ],
)
def test_corrupt_verdict_exits_2_naming_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "verdict.json").write_text(content)
    with pytest.raises(RunDirError, match=message):
        check_run(run_dir)
    outcome = CliRunner().invoke(check, [str(run_dir)])
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1 and "verdict.json" in outcome.output
    assert "Traceback" not in outcome.output


def test_missing_run_dir_and_missing_verdict_exit_2(contract: Path, tmp_path: Path) -> None:
    outcome = CliRunner().invoke(check, [str(tmp_path / "nope")])
    assert outcome.exit_code == 2
    assert outcome.output.strip() == f"contracts check: {tmp_path / 'nope'}: no such run directory"
    run_dir = run_passing(contract, tmp_path / "run")
    (run_dir / "verdict.json").unlink()
    outcome = CliRunner().invoke(check, [str(run_dir)])
    assert outcome.exit_code == 2
    assert "verdict.json: missing (evidence.jsonl exists: the run crashed" in outcome.output


def test_cli_exit_codes_and_junit_file(contract: Path, tmp_path: Path) -> None:
    good = run_passing(contract, tmp_path / "good")
    bad = run_cold_start_as_finetune(contract, tmp_path / "bad")
    runner = CliRunner()
    assert runner.invoke(check, [str(good)]).exit_code == 0
    outcome = runner.invoke(
        check, [str(bad), "--format", "junit", "--out", str(tmp_path / "j.xml")]
    )
    assert outcome.exit_code == 1
    assert "FAILED" in outcome.output and "j.xml" in outcome.output
    assert ET.parse(tmp_path / "j.xml").getroot().tag == "testsuites"
    outcome = runner.invoke(check, [str(bad), "--format", "json"])
    assert outcome.exit_code == 1 and json.loads(outcome.output)["ok"] is False
