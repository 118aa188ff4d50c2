"""``contracts list/show/codes`` (issue 13): decision rules are listed and shown, ``--format
json`` on all three, an empty folder says so, a walk tolerates folders and files vanishing
under it, and Ctrl-C exits 130."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from traingate_cli.contracts_cmd import cli

from traingate.contract import validation
from traingate.contract.findings import CODES

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
DECISIVE = CONTRACTS / "mlm-decisive-round-v1.yaml"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


# decision rules


def test_list_shows_the_decision_rules_of_a_decision_contract() -> None:
    result = run("list", CONTRACTS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("C-MLM-DECISIVE@"))
    rule = lines[at + 1]
    assert rule.startswith("  DEC-MLM-001 ")
    assert "SCALE | SHIP | MARGINAL | DROP | CONFLICTED" in rule


def test_show_finds_a_decision_rule_and_prints_it() -> None:
    result = run("show", "DEC-MLM-001", CONTRACTS)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("C-MLM-DECISIVE@1.0.0  ")
    assert "DEC-MLM-001  Ship, scale or drop MLM pre-training of the encoder" in out
    assert "  metric resolver: rate, higher is better; successes eval/resolver.json:" in out
    assert "  delta gap = resolver A − B" in out
    assert "  1. SCALE       when gap >= 1.0" in out
    assert "  5. CONFLICTED  otherwise" in out
    assert "falsified by falsifiers/test_decisions.py::test_seed_000_numbers_give_marginal" in out


def test_show_of_the_decision_contract_includes_its_rule() -> None:
    result = run("show", "C-MLM-DECISIVE", CONTRACTS)
    assert result.exit_code == 0, result.output
    assert "DEC-MLM-001  Ship, scale" in result.stdout


def test_an_unknown_id_suggests_a_decision_rule() -> None:
    result = run("show", "DEC-MLM-01", CONTRACTS)
    assert result.exit_code == 2
    assert "did you mean `DEC-MLM-001`?" in result.stderr


# --format json


def test_list_json_has_stable_keys_for_every_contract() -> None:
    result = run("list", CONTRACTS, "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"summary", "contracts"}
    assert payload["summary"]["contracts"] == len(payload["contracts"]) == 9
    by_id = {c["id"]: c for c in payload["contracts"]}
    keys = {"file", "valid", "id", "version", "ref", "title", "status"}
    assert all(keys | {"invariants", "gates", "decisions"} == set(c) for c in by_id.values())
    pretrain = by_id["C-TRAIN-PRETRAIN"]
    inv = next(i for i in pretrain["invariants"] if i["id"] == "INV-TRAIN-005")
    assert inv == {
        "id": "INV-TRAIN-005",
        "title": "Non-divergence",
        "check": "non_divergence",
        "at": "validation",
        "on_violation": "abort",
    }
    gate = next(g for g in pretrain["gates"] if g["id"] == "GATE-TRAIN-005")
    assert gate == {"id": "GATE-TRAIN-005", "requires": ["INV-TRAIN-005"], "ship_blocking": True}
    (rule,) = by_id["C-MLM-DECISIVE"]["decisions"]
    assert rule["id"] == "DEC-MLM-001"
    assert rule["verdicts"] == ["SCALE", "SHIP", "MARGINAL", "DROP", "CONFLICTED"]


def test_list_json_marks_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("contract: C-X\n")
    result = run("list", bad, "--format", "json")
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["contracts"]
    assert entry["valid"] is False and entry["file"] == str(bad) and entry["findings"] > 0


def test_show_json_evaluates_a_threshold_for_the_regime() -> None:
    args = ["show", "INV-TRAIN-005", CONTRACTS, "--regime", "from-scratch"]
    result = run(*args, "--param", "vocab_size=50257", "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"contract", "file", "regime", "gates", "invariants", "decisions"}
    assert payload["contract"]["id"] == "C-TRAIN-PRETRAIN"
    assert payload["regime"] == {"kind": "from_scratch", "vocab_size": 50257}
    (inv,) = payload["invariants"]
    cap = inv["params"]["epoch_zero_cap"]["formulas"]["from_scratch"]
    assert cap["source"] == "2 * ln(vocab_size)"
    assert cap["value"] == pytest.approx(21.6498, abs=1e-3)
    assert [g["id"] for g in payload["gates"]] == ["GATE-TRAIN-005"]
    assert payload["decisions"] == []


def test_show_json_of_a_decision_rule() -> None:
    result = run("show", "DEC-MLM-001", CONTRACTS, "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["invariants"] == [] and payload["gates"] == []
    (rule,) = payload["decisions"]
    assert rule["id"] == "DEC-MLM-001"
    assert rule["branches"][0] == {"when": "gap >= 1.0", "otherwise": None, "verdict": "SCALE"}
    assert rule["metrics"]["calibration"]["higher_is_better"] is False


def test_codes_json_lists_every_code() -> None:
    result = run("codes", "--format", "json")
    assert result.exit_code == 0
    entries = json.loads(result.stdout)["codes"]
    assert {e["code"]: e["meaning"] for e in entries} == CODES


# an empty folder, a walk under deletions


def test_list_of_a_folder_without_contracts_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("no contracts\n")
    result = run("list", tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"contracts: no contracts found in {tmp_path}\n"


def test_a_folder_vanishing_during_the_walk_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``contracts list /tmp`` met while another process deleted folders under it."""
    shutil.copy(DECISIVE, tmp_path / "decisive.yaml")
    (tmp_path / "gone" / "deeper").mkdir(parents=True)
    scandir = os.scandir

    def vanishing(path: str | os.PathLike[str] = ".") -> object:
        if Path(path).name == "gone":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    result = run("list", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "DEC-MLM-001" in result.stdout


def test_a_file_deleted_between_the_walk_and_its_reading_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(DECISIVE, tmp_path / "decisive.yaml")
    doomed = tmp_path / "tmp-scratch.yaml"
    doomed.write_text("contract: C-X\n")
    walk = validation.walk_contract_files

    def walk_then_delete(root: Path) -> list[Path]:
        found = walk(root)
        doomed.unlink()
        return found

    monkeypatch.setattr(validation, "walk_contract_files", walk_then_delete)
    result = run("list", tmp_path)
    assert result.exit_code == 0, result.output
    assert "DEC-MLM-001" in result.stdout and "tmp-scratch" not in result.output


def test_an_explicitly_named_missing_file_is_still_an_error(tmp_path: Path) -> None:
    result = run("list", tmp_path / "missing.yaml")
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr


# Ctrl-C


@pytest.mark.parametrize("command", [["validate"], ["list"], ["show", "INV-TRAIN-005"]])
def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("traingate_cli.common.validate_paths", interrupted)
    result = run(*command, CONTRACTS)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.stderr and "Aborted!" not in result.output
