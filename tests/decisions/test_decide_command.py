"""`contracts decide`: the seed case in text and JSON, suggestions, missing inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from traingate_cli.decide_cmd import decide

from traingate.contract.loading import load_contract
from traingate.decisions import evaluate_rule

from .conftest import CONTRACT, RULE, SEED_A, SEED_B, YAML_RULE, write_run

# --- the command ---------------------------------------------------------------------------


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(decide, [*args, str(CONTRACT)])


def test_cli_seed_case_text() -> None:
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(SEED_B))
    assert out.exit_code == 0, out.output
    text = out.output
    for r in evaluate_rule(RULE, SEED_A, SEED_B).readings:
        assert any(
            r.raw in line and r.field in line and r.path in line for line in text.splitlines()
        ), r
    assert "deltas (A − B; rates in percentage points)" in text
    assert "= -0.2 pp" in text and "= -1.68675 pp" in text and "= 0.949 − 0.949" in text
    assert "σ = 0.225051 pp" in text and "|Δ|/σ = 0.888687" in text
    assert "MDE = 0.630487 pp at α = 0.05 two-sided, power 0.8" in text
    assert '"no difference" here is not "no effect"' in text
    assert "-0.2 >= -0.5 (true) and -1.68675 >= 0 (false) and 0 <= 0 (true)" in text
    assert "3. MARGINAL    true   gap >= -0.5   <- taken" in text
    assert text.rstrip().endswith("verdict: MARGINAL (branch 3: gap >= -0.5)")


def test_cli_seed_case_json() -> None:
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(SEED_B), "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["verdict"] == "MARGINAL" and data["taken"] == 3
    assert data["contract"] == "C-MLM-DECISIVE@1.0.0"
    assert data["tie"]["abs_z"] == pytest.approx(0.889, abs=1e-3)
    assert [b["holds"] for b in data["branches"]] == [False, False, True, True, True]
    assert {r["path"] for r in data["readings"]} >= {str(SEED_A / "eval" / "resolver.json")}


def test_cli_unknown_rule_suggests() -> None:
    out = run_cli("DEC-MLM-01", "--a", str(SEED_A), "--b", str(SEED_B))
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "contracts decide: no decision rule named DEC-MLM-01 (did you mean `DEC-MLM-001`?)"
    ]


def test_cli_missing_sidecar_names_the_path(tmp_path: Path) -> None:
    run_b = write_run(tmp_path / "b", (1, 2), (1, 2), "0.5")
    (run_b / "eval" / "harness.json").unlink()
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(run_b))
    assert out.exit_code == 2
    (line,) = out.output.strip().splitlines()
    assert str(run_b / "eval" / "harness.json") in line and "no such file" in line
    assert "Traceback" not in out.output and isinstance(out.exception, SystemExit)


def test_cli_missing_run_directory(tmp_path: Path) -> None:
    out = run_cli("DEC-MLM-001", "--a", str(tmp_path / "nope"), "--b", str(SEED_B))
    assert out.exit_code == 2
    assert (
        out.output.strip() == f"contracts decide: run A: {tmp_path / 'nope'}: no such run directory"
    )


def test_an_unquoted_yaml_boolean_verdict_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(YAML_RULE.format(when="gap > 0").replace("verdict: KEEP", "verdict: NO"))
    (f,) = load_contract(path).findings
    assert (
        f.field == "decisions[0].branches[1].verdict"
        and 'quote it, e.g. verdict: "NO"' in f.message
    )


def test_cli_refuses_a_rule_in_a_contract_with_errors(tmp_path: Path) -> None:
    broken = tmp_path / "c.yaml"
    broken.write_text(
        YAML_RULE.format(when="gap > 0").replace("title: t\n", "title: t\ntitle: u\n", 1)
    )
    out = CliRunner().invoke(
        decide, ["DEC-TEST-001", str(broken), "--a", str(SEED_A), "--b", str(SEED_B)]
    )
    assert out.exit_code == 2
    assert "validation error" in out.output and len(out.output.strip().splitlines()) == 1
