"""``audit_metrics`` / ``contracts audit``: replaying metrics logs through the same Guard."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import audit

from traingate.ci.audit import AuditError, audit_metrics, parse_mapping
from traingate.ci.runcheck import check_run
from traingate.contract.regime import Finetune
from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict

LOSS_BALANCE = Path(__file__).resolve().parents[2] / "contracts" / "loss-balance-v1.yaml"
# Seed 004's validation loss components at epochs 1/10/20/50/100 (its table, verbatim).
SEED_004 = [
    (1, 1.08, 0.025, 0.57, 16.12, 17.79),
    (10, 0.69, 0.011, 0.25, 15.25, 16.20),
    (20, 0.70, 0.010, 0.27, 12.88, 13.86),
    (50, 0.74, 0.011, 0.29, 11.00, 12.04),
    (100, 0.68, 0.009, 0.28, 10.08, 11.05),
]
HEALTHY = [
    (1, 0.90, 0.60, 0.70, 0.80, 3.00),
    (2, 0.80, 0.50, 0.60, 0.70, 2.60),
    (3, 0.70, 0.45, 0.50, 0.65, 2.30),
]
COLUMNS = ["epoch", "phase", "loss_type", "loss_ptr", "loss_span", "loss_countdown", "total_loss"]
MAPPING = {
    "epoch": "epoch",
    "loss_type": "val_components.type",
    "loss_ptr": "val_components.ptr",
    "loss_span": "val_components.span",
    "loss_countdown": "val_components.countdown",
}
CLI_MAPS = [
    "--map",
    "epoch",
    *[arg for col, obs in MAPPING.items() if col != "epoch" for arg in ("--map", f"{col}={obs}")],
]
STEP_CONTRACT = """\
contract: C-TEST-AUDIT
version: 1.0.0
title: Audit test contract
status: active
changelog:
  - {version: 1.0.0, date: 2026-01-01, change: "first"}
invariants:
  - id: INV-AUD-001
    title: Finite loss
    check: finite
    at: step
    params: {observations: [loss]}
    on_violation: abort
  - id: INV-AUD-005
    title: Non-divergence
    check: non_divergence
    at: validation
    params: {epoch_zero_cap: 10.0, ratio_limit: 2.0}
    on_violation: abort
  - id: INV-AUD-007
    title: Validation balance, warn only
    check: loss_balance
    at: validation
    params: {source: val_components, max_share: 0.9}
    on_violation: warn
gates:
  - {id: GATE-AUD-001, requires: [INV-AUD-001, INV-AUD-005], ship_blocking: true}
  - {id: GATE-AUD-007, requires: [INV-AUD-007], ship_blocking: true}
"""


def write_csv(path: Path, rows: list[tuple[float, ...]], phase: str = "val") -> Path:
    lines = [",".join(COLUMNS)]
    lines += [",".join([str(r[0]), phase, *(str(v) for v in r[1:])]) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def step_contract(tmp_path: Path) -> Path:
    path = tmp_path / "audit-contract.yaml"
    path.write_text(STEP_CONTRACT)
    return path


def test_seed_004_is_flagged_on_countdown_at_its_first_row(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "loss_components.csv", SEED_004)
    done = audit_metrics(log, [LOSS_BALANCE], Finetune(), {}, MAPPING, tmp_path / "run")
    abort = done.verdict.aborted_by
    assert abort.invariant == "INV-BAL-001"
    assert abort.observed == pytest.approx(16.12 / (1.08 + 0.025 + 0.57 + 16.12))
    assert abort.observed == pytest.approx(0.906, abs=5e-4)
    assert abort.limit == 0.9 and "countdown" in abort.detail
    assert done.audit["stopped_at"]["row"] == 1  # the run would have stopped here
    assert done.audit["replayed"] == 1 and done.audit["rows"] == 5
    result = check_run(tmp_path / "run")
    assert result.exit_code == 1
    assert {i.id: i.outcome for i in result.invariants} == {
        "INV-BAL-001": "fail",
        "INV-BAL-002": "skip",  # step point: no step rows in this log, advisory
    }
    events = [e["event"] for e in read_evidence(tmp_path / "run" / "evidence.jsonl")]
    assert events == ["start", "violation", "end"]
    written = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert written["stopped_at"]["row"] == 1 and written["mapping"] == MAPPING


def test_seed_004_cli_exit_1_and_every_row_dominated_when_warned(
    tmp_path: Path, step_contract: Path
) -> None:
    log = write_csv(tmp_path / "loss_components.csv", SEED_004)
    outcome = CliRunner().invoke(
        audit,
        [str(log), "--contracts", str(LOSS_BALANCE), *CLI_MAPS, "--out", str(tmp_path / "a")],
    )
    assert outcome.exit_code == 1, outcome.output
    assert "stopped at row 1 by INV-BAL-001" in outcome.output
    # the same log under a warn-only balance invariant: all five epochs replay, all dominated
    done = audit_metrics(
        log, [step_contract], None, {}, MAPPING, tmp_path / "b", only=["INV-AUD-007"]
    )
    record = done.verdict.invariants["INV-AUD-007"]
    assert record.evaluations == 5 and record.violations == 5
    assert record.worst.epoch == 10  # 15.25 / 16.201 ≈ 0.941, the most dominated
    assert check_run(tmp_path / "b").exit_code == 1  # warn, but its gate is ship-blocking


def test_healthy_components_pass(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "healthy.csv", HEALTHY)
    outcome = CliRunner().invoke(
        audit,
        [str(log), "--contracts", str(LOSS_BALANCE), *CLI_MAPS, "--out", str(tmp_path / "run")],
    )
    assert outcome.exit_code == 0, outcome.output
    record = load_verdict(tmp_path / "run").invariants["INV-BAL-001"]
    assert record.status == "pass" and record.evaluations == 3


def test_unmapped_required_observation_exits_2_naming_it(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "seed.csv", SEED_004)
    with pytest.raises(AuditError) as info:
        audit_metrics(
            log, [LOSS_BALANCE], None, {}, {"epoch": "epoch"}, tmp_path / "run", only=None
        )
    message = str(info.value)
    assert "unmapped observations: val_components (for INV-BAL-001 at validation)" in message
    assert "columns: epoch, phase, loss_type, loss_ptr, loss_span, loss_countdown" in message
    assert not (tmp_path / "run").exists()  # nothing written for unusable input
    outcome = CliRunner().invoke(
        audit,
        [
            str(log),
            "--contracts",
            str(LOSS_BALANCE),
            "--map",
            "epoch",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1 and "val_components" in outcome.output
    assert "Traceback" not in outcome.output


def test_only_narrows_what_must_be_mapped(tmp_path: Path, step_contract: Path) -> None:
    log = write_csv(tmp_path / "seed.csv", SEED_004)
    with pytest.raises(AuditError, match=r"val_loss \(for INV-AUD-005 at validation\)"):
        audit_metrics(log, [step_contract], None, {}, MAPPING, tmp_path / "x")
    done = audit_metrics(
        log, [step_contract], None, {}, MAPPING, tmp_path / "y", only=["INV-AUD-007"]
    )
    assert list(done.verdict.invariants) == ["INV-AUD-007"]


def test_mapped_column_missing_and_bad_cells_are_usage_errors(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "seed.csv", SEED_004)
    with pytest.raises(AuditError, match=r"mapped column\(s\) not in the file: loss_cd; columns"):
        audit_metrics(log, [LOSS_BALANCE], None, {}, {**MAPPING, "loss_cd": "x"}, tmp_path / "a")
    bad = tmp_path / "bad.csv"
    bad.write_text(log.read_text().replace("12.88", "twelve"))
    with pytest.raises(AuditError, match=r"row 3 \(line 4\): column loss_countdown: 'twelve'"):
        audit_metrics(bad, [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "b")
    with pytest.raises(AuditError, match=r"unknown metrics format '\.txt'"):
        audit_metrics(tmp_path / "x.txt", [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "c")
    with pytest.raises(AuditError, match="mapped twice"):
        parse_mapping(["a=loss", "a=val_loss"])


def test_parquet_and_jsonl_inputs_give_the_same_verdict(tmp_path: Path) -> None:
    names = ["epoch", "loss_type", "loss_ptr", "loss_span", "loss_countdown"]
    columns = {n: [r[i] for r in SEED_004] for i, n in enumerate(names)}
    pq.write_table(pa.table(columns), tmp_path / "seed.parquet")
    with (tmp_path / "seed.jsonl").open("w") as fh:
        for r in SEED_004:  # nested objects flatten to dotted column names
            parts = dict(zip(["type", "ptr", "span", "countdown"], r[1:5], strict=True))
            fh.write(json.dumps({"epoch": r[0], "loss": parts}) + "\n")
    jsonl_map = {"epoch": "epoch"} | {f"loss.{k}": f"val_components.{k}" for k in parts}
    observed = []
    for name, mapping in (("seed.parquet", MAPPING), ("seed.jsonl", jsonl_map)):
        done = audit_metrics(
            tmp_path / name, [LOSS_BALANCE], None, {}, mapping, tmp_path / f"run-{name}"
        )
        assert done.verdict.aborted_by.invariant == "INV-BAL-001"
        observed.append(done.verdict.aborted_by.observed)
    assert observed[0] == pytest.approx(observed[1]) == pytest.approx(0.906, abs=5e-4)


def test_step_and_validation_rows_in_one_file(tmp_path: Path, step_contract: Path) -> None:
    rows = [{"step": s, "loss": 2.0 - 0.1 * s} for s in range(6)]
    rows.insert(3, {"step": 2, "epoch": 0, "val": 1.9})
    rows.append({"step": 5, "epoch": 1, "val": 1.7, "note": "end of epoch"})
    log = tmp_path / "mixed.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    mapping = {"step": "step", "epoch": "epoch", "loss": "loss", "val": "val_loss"}
    done = audit_metrics(
        log,
        [step_contract],
        None,
        {},
        mapping,
        tmp_path / "run",
        only=["INV-AUD-001", "INV-AUD-005"],
    )
    assert done.verdict.invariants["INV-AUD-001"].evaluations == 6
    assert done.verdict.invariants["INV-AUD-005"].evaluations == 2
    assert done.verdict.invariants["INV-AUD-005"].last.step == 5
    assert check_run(tmp_path / "run").exit_code == 0
    rows = pq.read_table(tmp_path / "run" / "metrics.parquet").to_pylist()
    assert [(r["point"], r["step"]) for r in rows if r["name"] == "loss"] == [
        ("step", s) for s in range(6)
    ]
    assert [(r["point"], r["epoch"]) for r in rows if r["name"] == "val_loss"] == [
        ("validation", 0),
        ("validation", 1),
    ]


def test_abort_on_a_step_row_stops_the_replay_with_its_row_number(
    tmp_path: Path, step_contract: Path
) -> None:
    log = tmp_path / "steps.csv"
    log.write_text("step,loss\n0,2.0\n1,1.9\n2,nan\n3,1.8\n4,1.7\n")
    done = audit_metrics(
        log,
        [step_contract],
        None,
        {},
        {"step": "step", "loss": "loss"},
        tmp_path / "run",
        only=["INV-AUD-001"],
    )
    assert done.audit["stopped_at"] == {
        "row": 3,
        "line": 4,
        "point": "step",
        "invariant": "INV-AUD-001",
        "step": 2,
        "epoch": None,
    }
    assert done.verdict.invariants["INV-AUD-001"].evaluations == 3  # rows 4 and 5 never ran
    assert "stopped at row 3" in " ".join(check_run(tmp_path / "run").notes)


def test_where_selects_rows_and_train_rows_are_left_out(tmp_path: Path) -> None:
    log = tmp_path / "phases.csv"
    write_csv(log, HEALTHY)
    train = [(e, 0.1, 0.1, 0.1, 9.0, 9.3) for e in (1, 2, 3)]  # dominated, but training rows
    log.write_text(
        log.read_text() + "".join(f"{r[0]},train,{','.join(map(str, r[1:]))}\n" for r in train)
    )
    done = audit_metrics(
        log, [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "run", where={"phase": "val"}
    )
    assert done.verdict.invariants["INV-BAL-001"].status == "pass"
    assert done.audit["rows"] == 3
    with pytest.raises(AuditError, match="no data rows match --where phase=test"):
        audit_metrics(
            log, [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "x", where={"phase": "test"}
        )


def test_a_check_rejecting_a_row_is_reported_with_the_row(
    tmp_path: Path, step_contract: Path
) -> None:
    log = write_csv(tmp_path / "seed.csv", SEED_004)  # epochs start at 1, not 0
    with pytest.raises(
        AuditError, match=r"row 1 \(line 2\), epoch 1: ValueError: expected validation of epoch 0"
    ):
        audit_metrics(
            log,
            [step_contract],
            None,
            {},
            {**MAPPING, "total_loss": "val_loss"},
            tmp_path / "run",
            only=["INV-AUD-005"],
        )
    assert check_run(tmp_path / "run").exit_code == 1  # the run dir records the crash


def test_existing_run_dir_is_never_overwritten_and_default_out_is_numbered(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "healthy.csv", HEALTHY)
    audit_metrics(log, [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "run")
    with pytest.raises(AuditError, match="already holds a run"):
        audit_metrics(log, [LOSS_BALANCE], None, {}, MAPPING, tmp_path / "run")
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        args = [str(log), "--contracts", str(LOSS_BALANCE), *CLI_MAPS, "--format", "json"]
        first, second = runner.invoke(audit, args), runner.invoke(audit, args)
        assert first.exit_code == second.exit_code == 0
        assert Path("audit-healthy/verdict.json").is_file()
        assert Path("audit-healthy-2/verdict.json").is_file()
        assert json.loads(first.stdout)["ok"] is True  # json on stdout, the summary on stderr
