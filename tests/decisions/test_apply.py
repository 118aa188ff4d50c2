"""Applying a rule: the seed case, every branch with exact boundary values, no verdict.

The seed case is seed 000 (the MLM decisive round): the decision written by hand was DROP;
the pre-registered rule applied to the published numbers gives MARGINAL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.decide_cmd import decide

from traingate.decisions import DecisionRule, evaluate_rule

from .conftest import RULE, SEED_A, SEED_B, minimal_rule, write_run, write_sidecar

# --- the seed case -----------------------------------------------------------------------


def test_seed_000_gives_marginal_not_the_hand_written_drop() -> None:
    result = evaluate_rule(RULE, SEED_A, SEED_B)
    assert result.verdict == "MARGINAL"
    assert result.verdict != "DROP"
    assert result.taken is not None and result.taken.index == 3
    deltas = {d.name: d for d in result.deltas}
    assert deltas["gap"].value == -0.2 and deltas["gap"].unit == "pp"
    assert round(deltas["harness_delta"].value, 2) == -1.69
    assert deltas["calibration_delta"].value == 0.0 and deltas["calibration_delta"].unit == ""
    assert deltas["gap"].favours == "B" and deltas["calibration_delta"].favours == "neither"
    tie = result.tie
    assert tie is not None
    assert tie.sigma == pytest.approx(0.225, abs=5e-4)  # pp
    assert tie.abs_z == pytest.approx(0.89, abs=0.01)  # the seed's "0.9σ — tie"
    assert tie.z < 0 and not tie.significant
    assert tie.mde == pytest.approx(2.8016 * tie.sigma_unpooled, rel=1e-4)
    assert 0.62 < tie.mde < 0.64  # a 0.5 pp true effect would usually be missed at n = 10k
    truths = [(b.verdict, b.holds, b.taken) for b in result.branches]
    assert truths == [
        ("SCALE", False, False),
        ("SHIP", False, False),
        ("MARGINAL", True, True),
        ("DROP", True, False),
        ("CONFLICTED", True, False),
    ]


def test_every_number_read_names_its_file_and_field() -> None:
    result = evaluate_rule(RULE, SEED_A, SEED_B)
    assert len(result.readings) == 10  # 2 rates x 2 counts + 1 value, for each run
    expected = {
        ("A", "resolver", "successes"): "9730",
        ("A", "resolver", "trials"): "10000",
        ("B", "resolver", "successes"): "9750",
        ("B", "resolver", "trials"): "10000",
        ("A", "harness", "successes"): "79",
        ("B", "harness", "successes"): "86",
        ("A", "harness", "trials"): "415",
        ("B", "harness", "trials"): "415",
        ("A", "calibration", "value"): "0.949",
        ("B", "calibration", "value"): "0.949",
    }
    assert {(r.run, r.metric, r.role): r.raw for r in result.readings} == expected
    for r in result.readings:
        data = json.loads(Path(r.path).read_text())
        for key in r.field.split("."):
            data = data[key]
        assert str(data) == r.raw  # the number really is at that file and field
        assert r.path == str((SEED_A if r.run == "A" else SEED_B) / r.file)


# --- every branch, with exact boundary values ---------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        # gap exactly 1.0 pp → SCALE (≥, not >), whatever the secondary metrics do
        (((9850, 10000), (10, 415), "0.999"), ((9750, 10000), (86, 415), "0.949"), "SCALE"),
        # gap 0.99 pp with gains holding → SHIP, not SCALE
        (((9849, 10000), (86, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "SHIP"),
        # the seed's resolver with harness and calibration exactly level → SHIP
        (((9730, 10000), (86, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "SHIP"),
        # in the band, calibration 0.001 worse → gains do not hold → MARGINAL
        (((9730, 10000), (90, 415), "0.950"), ((9750, 10000), (86, 415), "0.949"), "MARGINAL"),
        # gap exactly −0.5 pp is still inside the band: MARGINAL, not DROP
        (((9700, 10000), (79, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "MARGINAL"),
        # gap −0.51 pp, gains gone → DROP
        (((9699, 10000), (79, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "DROP"),
        # gap −0.51 pp, harness up and calibration better → CONFLICTED
        (((9699, 10000), (90, 415), "0.94"), ((9750, 10000), (86, 415), "0.949"), "CONFLICTED"),
        # gap −0.51 pp, harness up but calibration worse → DROP
        (((9699, 10000), (90, 415), "0.95"), ((9750, 10000), (86, 415), "0.949"), "DROP"),
    ],
)
def test_each_branch_is_reachable(tmp_path: Path, a: tuple, b: tuple, verdict: str) -> None:
    result = evaluate_rule(RULE, write_run(tmp_path / "a", *a), write_run(tmp_path / "b", *b))
    assert result.verdict == verdict
    assert sum(br.taken for br in result.branches) == 1


def test_exact_boundaries_are_exact(tmp_path: Path) -> None:
    one = evaluate_rule(
        RULE,
        write_run(tmp_path / "a1", (9850, 10000), (86, 415), "0.949"),
        write_run(tmp_path / "b1", (9750, 10000), (86, 415), "0.949"),
    )
    assert one.symbols["gap"] == 1.0
    half = evaluate_rule(
        RULE,
        write_run(tmp_path / "a2", (1949, 4000), (1, 3), "0.1"),
        write_run(tmp_path / "b2", (1951, 4000), (1, 3), "0.3"),
    )
    assert half.symbols["gap"] == -0.05 and half.symbols["calibration_delta"] == -0.2


def test_no_branch_holding_gives_no_verdict_and_exit_1(tmp_path: Path) -> None:
    data = minimal_rule(branches=[{"when": "gap >= 1", "verdict": "UP"}])
    rule = DecisionRule.model_validate(data)
    for run, ok in (("a", 5), ("b", 5)):
        write_sidecar(tmp_path / run / "eval.json", {"ok": ok, "n": 10})
    result = evaluate_rule(rule, tmp_path / "a", tmp_path / "b")
    assert result.verdict is None and result.taken is None
    contract = tmp_path / "c.yaml"
    contract.write_text(
        "contract: C-TEST\nversion: 1.0.0\ntitle: t\nstatus: draft\n"
        "changelog: [{version: 1.0.0, date: 2026-01-01, change: x}]\n"
        f"decisions: [{json.dumps(data)}]\n"
    )
    out = CliRunner().invoke(
        decide,
        ["DEC-TEST-001", str(contract), "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")],
    )
    assert out.exit_code == 1, out.output
    assert "verdict: none" in out.output
