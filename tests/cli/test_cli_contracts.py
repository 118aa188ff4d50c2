"""``contracts validate/list/show/verify`` on the shipped contracts and on small temp projects.

Exit codes are the CLI's promise: 0 clean, 1 findings or undischarged gates, 2 usage or
unreadable input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli

from traingate.ci.verify import Verification, combine, verify
from traingate.contract.findings import CODES
from traingate.contract.loading import load_contract
from traingate.contract.validation import validate_paths

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
PRETRAIN = CONTRACTS / "training-loop-pretrain-v1.yaml"
BROKEN = REPO / "tests" / "fixtures" / "broken"
SUMMARY = re.compile(r"^(\d+) contracts · (\d+) invariants · (\d+) gates · 0 errors · 0 warnings$")
PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO / "cli")])


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_one_line_usage_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("contracts: "), lines
    for needle in needles:
        assert needle in lines[0]


# validate


def test_validate_shipped_contracts_is_clean() -> None:
    result = run("validate", str(CONTRACTS))
    assert result.exit_code == 0, result.output
    match = SUMMARY.match(result.stdout.splitlines()[-1])
    assert match, result.stdout
    assert int(match[1]) == len(list(CONTRACTS.glob("*.yaml"))) >= 1
    assert int(match[2]) >= 1 and int(match[3]) >= 1
    assert run("validate", "--strict", str(CONTRACTS)).exit_code == 0


def test_validate_defaults_to_contracts_then_to_the_shipped_ones(
    tmp_path: Path, monkeypatch
) -> None:
    expected = run("validate", str(CONTRACTS)).stdout.splitlines()[-1]
    monkeypatch.chdir(REPO)
    assert run("validate").stdout.splitlines()[-1] == expected
    monkeypatch.chdir(tmp_path)  # no ./contracts here: the shipped contracts are validated
    result = run("validate")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == expected


def test_validate_json_summary_of_shipped() -> None:
    result = run("validate", "--format", "json", str(CONTRACTS))
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["findings"] == []
    assert payload["summary"]["errors"] == 0 and payload["summary"]["warnings"] == 0


def test_strict_turns_a_warning_into_a_failure() -> None:
    warned = BROKEN / "parameter_unused.yaml"
    lenient = run("validate", str(warned))
    assert lenient.exit_code == 0
    assert "warning TG133" in lenient.stdout
    assert run("validate", "--strict", str(warned)).exit_code == 1
    strict_json = json.loads(run("validate", "--strict", "--format", "json", str(warned)).stdout)
    assert strict_json["ok"] is False


@pytest.mark.parametrize("command", ["validate", "list", "verify"])
def test_missing_path_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.yaml"
    result = run(command, str(missing))
    assert_one_line_usage_error(result, f"{missing}: no such file or directory")


def test_empty_directory_is_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("no contracts here\n")
    report = validate_paths([tmp_path])
    assert [f.code for f in report.findings] == ["TG160"]
    assert not report.ok()
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path}: error TG160: no contract files found" in result.stdout
    assert "0 contracts · 0 invariants · 0 gates · 1 errors · 0 warnings" in result.stdout


def test_codes_lists_every_code() -> None:
    result = run("codes")
    assert result.exit_code == 0
    for code, meaning in CODES.items():
        assert f"{code}  {meaning}" in result.stdout


# list


def test_list_shows_contracts_invariants_and_gates() -> None:
    result = run("list", str(CONTRACTS))
    assert result.exit_code == 0
    out = result.stdout
    assert re.search(r"^C-TRAIN-PRETRAIN@\d+\.\d+\.\d+  \[active\]  ", out, re.M)
    assert re.search(
        r"^  INV-TRAIN-005 +non_divergence +at validation abort +Non-divergence$", out, re.M
    )
    assert re.search(r"^  GATE-TRAIN-005 +requires INV-TRAIN-005  \(ship-blocking\)$", out, re.M)


def test_list_marks_an_invalid_contract() -> None:
    path = BROKEN / "bad_status_enum.yaml"
    result = run("list", str(path))
    assert result.exit_code == 1
    assert f"{path}: invalid (1 findings; run `contracts validate`)" in result.stdout


# show


def test_show_from_scratch_evaluates_two_ln_vocab() -> None:
    result = run(
        "show", "INV-TRAIN-005", str(CONTRACTS), "--regime", "from-scratch",
        "--param", "vocab_size=50257",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "regime from_scratch (vocab_size=50257)" in result.stdout
    line = next(x for x in result.stdout.splitlines() if "epoch_zero_cap" in x)
    assert line == "  epoch_zero_cap [from_scratch]: 2 * ln(vocab_size)  →  2 * ln(50257) = 21.6498"
    assert "21.64" in line
    assert "[finetune]" not in result.stdout


def test_show_finetune_cap_is_ten() -> None:
    result = run("show", "INV-TRAIN-005", str(CONTRACTS), "--regime", "finetune")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if "epoch_zero_cap" in x)
    assert line == "  epoch_zero_cap [finetune]: 10.0  →  10"
    assert "falsified by falsifiers/test_training_loop.py::" in result.stdout


def test_show_without_a_regime_lists_both_caps() -> None:
    result = run("show", "INV-TRAIN-005", str(CONTRACTS))
    assert result.exit_code == 0
    assert "  epoch_zero_cap [finetune]: 10.0  →  10" in result.stdout
    assert "  epoch_zero_cap [from_scratch]: 2 * ln(vocab_size)\n" in result.stdout


def test_show_a_gate_shows_what_it_requires() -> None:
    result = run("show", "GATE-TRAIN-005", str(CONTRACTS))
    assert result.exit_code == 0
    assert "gate GATE-TRAIN-005: requires INV-TRAIN-005 (ship-blocking)" in result.stdout
    assert "\nINV-TRAIN-005  Non-divergence" in result.stdout


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("vocab_size", "expects NAME=VALUE"),
        ("=50257", "expects NAME=VALUE"),
        ("vocab_size=lots", "'lots' is not a number"),
        ("vocab_size=", "'' is not a number"),
        ("vocab_size=1", "below its minimum 2"),
        ("vocab_size=2.5", "must be an integer"),
        ("vocab_sise=50257", "declares no such parameter"),
        pytest.param("vocab_size=nan", "vocab_size"),
        pytest.param("vocab_size=inf", "vocab_size"),
    ],
)
def test_bad_param_spellings_exit_2(param: str, needle: str) -> None:
    result = run(
        "show", "INV-TRAIN-005", str(CONTRACTS), "--regime", "from-scratch", "--param", param
    )
    assert_one_line_usage_error(result, needle)


def test_from_scratch_needs_a_vocab_size() -> None:
    result = run("show", "INV-TRAIN-005", str(CONTRACTS), "--regime", "from-scratch")
    assert_one_line_usage_error(result, "needs --param vocab_size=N")


def test_unknown_id_exits_2_with_a_suggestion() -> None:
    result = run("show", "INV-TRAIN-05", str(CONTRACTS))
    assert_one_line_usage_error(
        result,
        "no contract, invariant, gate or decision rule named INV-TRAIN-05 "
        "(did you mean `INV-TRAIN-005`?)",
    )


# verify


@pytest.mark.slow
def test_verify_discharges_the_shipped_pretraining_gate() -> None:
    result = run("verify", str(PRETRAIN))
    assert result.exit_code == 0, result.output
    assert re.search(r"^discharged +INV-TRAIN-005 +C-TRAIN-PRETRAIN@", result.stdout, re.M)
    assert re.search(r"^discharged +GATE-TRAIN-005 +C-TRAIN-PRETRAIN@.*\(ship-blocking\)$",
                     result.stdout, re.M)  # fmt: skip
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.M)


TINY_TESTS = """
def test_holds():
    assert 1 + 1 == 2


def test_broken():
    assert 1 + 1 == 3
"""


def tiny_contract(second: str) -> str:
    """C-TINY: INV-TINY-001 falsified by ``test_holds`` behind an advisory gate, INV-TINY-002
    by ``second`` behind a ship-blocking one."""
    falsifiers = {1: ("Holds", "falsifiers/test_tiny.py::test_holds"), 2: ("Broken", second)}
    data = {
        "contract": "C-TINY",
        "version": "1.0.0",
        "title": "Tiny",
        "status": "draft",
        "changelog": [{"version": "1.0.0", "date": dt.date(2026, 1, 1), "change": "first"}],
        "invariants": [
            {
                "id": f"INV-TINY-00{n}",
                "title": title,
                "check": "non_divergence",
                "at": "validation",
                "params": {"epoch_zero_cap": 10.0},
                "on_violation": "abort",
                "falsified_by": [test],
            }
            for n, (title, test) in falsifiers.items()
        ],
        "gates": [
            {"id": f"GATE-TINY-00{n}", "requires": [f"INV-TINY-00{n}"], "ship_blocking": n == 2}
            for n in falsifiers
        ],
    }
    return yaml.safe_dump(data, sort_keys=False)


def tiny_project(root: Path, second: str) -> Path:
    """A temp project: falsifiers/test_tiny.py (one passing, one failing test) + a contract."""
    (root / "falsifiers").mkdir()
    (root / "falsifiers" / "test_tiny.py").write_text(TINY_TESTS)
    (root / "contracts").mkdir()
    contract = root / "contracts" / "tiny.yaml"
    contract.write_text(tiny_contract(second))
    return contract


@pytest.mark.slow
def test_verify_reports_a_failing_falsifier(tmp_path: Path, monkeypatch) -> None:
    contract = tiny_project(tmp_path, "falsifiers/test_tiny.py::test_broken")
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)  # the pytest child must import traingate
    assert run("validate", str(contract)).exit_code == 0
    result = run("verify", str(contract))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert re.search(r"^discharged +INV-TINY-001 +C-TINY@1\.0\.0$", out, re.M)
    assert re.search(r"^failed +INV-TINY-002 +C-TINY@1\.0\.0$", out, re.M)
    assert re.search(r"^discharged +GATE-TINY-001 .*\(advisory\)$", out, re.M)
    assert re.search(r"^failed +GATE-TINY-002 .*\(ship-blocking\)$", out, re.M)
    assert "  failed: falsifiers/test_tiny.py::test_broken" in out
    assert out.rstrip().endswith("1 passed, 1 failed")


def test_verify_refuses_to_run_on_validation_errors() -> None:
    result = run("verify", str(BROKEN / "falsifier_missing_test.yaml"))
    assert result.exit_code == 1
    assert "error TG150" in result.stderr
    assert "1 validation errors; fix them before verify" in result.stderr


def test_verify_reports_a_missing_falsifier(tmp_path: Path) -> None:
    contract = tiny_project(tmp_path, "falsifiers/test_tiny.py::test_never_written")
    report = validate_paths([contract])
    assert [f.code for f in report.findings] == ["TG150"]  # validate flags it; verify is direct
    result = verify([load_contract(contract)])
    missing = "falsifiers/test_tiny.py::test_never_written"
    assert result.tests[missing] == "missing"
    assert result.tests["falsifiers/test_tiny.py::test_holds"] == "passed"
    assert result.invariants == {"INV-TINY-001": "discharged", "INV-TINY-002": "missing"}
    assert result.gates == {"GATE-TINY-001": "discharged", "GATE-TINY-002": "missing"}
    assert result.ok is False
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["ok"] is False
    assert payload["tests"][missing] == "missing"
    assert payload["gates"]["GATE-TINY-002"] == {
        "status": "missing",
        "ship_blocking": True,
        "contract": "C-TINY@1.0.0",
    }
    assert payload["invariants"]["INV-TINY-001"] == {
        "status": "discharged",
        "contract": "C-TINY@1.0.0",
    }


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ([], "missing"),  # naming no evidence is not a pass
        (["passed"], "discharged"),
        (["passed", "passed"], "discharged"),
        (["passed", "skipped"], "missing"),
        (["passed", "missing"], "missing"),
        (["passed", "failed"], "failed"),
        (["missing", "failed"], "failed"),
        (["skipped"], "missing"),
    ],
)
def test_combine(outcomes: list, status: str) -> None:
    assert combine(outcomes) == status


def test_no_ship_blocking_gate_is_not_ok() -> None:
    result = Verification(gates={"G": "discharged"}, ship_blocking={"G": False})
    assert result.ok is False
    result = Verification(gates={"G": "discharged"}, ship_blocking={"G": True})
    assert result.ok is True


# end to end, in a fresh interpreter


def test_validate_end_to_end_is_fast_and_never_imports_torch() -> None:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    cmd = [sys.executable, "-m", "traingate_cli.contracts_cmd", "validate", str(CONTRACTS)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY.match(proc.stdout.splitlines()[-1])
    assert wall < 3.0, f"`contracts validate` took {wall:.2f} s (promise: well under 1 s)"
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert timed.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines()]
    assert "traingate.contract.validation" in imported  # the import log is really there
    assert not [m for m in imported if m.split(".")[0] in ("torch", "numpy", "pyarrow")]
