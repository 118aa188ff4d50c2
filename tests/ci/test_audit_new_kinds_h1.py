"""``contracts audit`` replays of step logs through INV-TRAIN-007 (no placeholder) and
INV-TRAIN-008 (metrics present), with the shipped C-TRAIN-PRETRAIN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import audit

from traingate.ci.audit import AuditError, audit_metrics
from traingate.runtime.verdict import load_verdict

ONLY = ["--only", "INV-TRAIN-001", "--only", "INV-TRAIN-007", "--only", "INV-TRAIN-008"]
MAPS = ["--map", "step", "--map", "loss", "--map", "grad_norm"]


def step_log(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    """A CSV step log of ``(step, loss, grad_norm)`` cells (an empty cell is a missing value)."""
    lines = ["step,loss,grad_norm", *(f"{s},{loss},{norm}" for s, loss, norm in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def healthy(steps: range) -> list[tuple[int, str, str]]:
    return [(s, f"{4.0 - s / 50:.6f}", f"{1.0 + math.sin(s):.6f}") for s in steps]


def run_audit(log: Path, out: Path) -> tuple[int, str]:
    outcome = CliRunner().invoke(audit, [str(log), *MAPS, *ONLY, "--out", str(out)])
    return outcome.exit_code, outcome.output


def test_a_placeholder_tail_aborts_on_its_fifth_row(tmp_path: Path) -> None:
    # the origin: once the shards ran dry, every step reported loss 1.0 and grad_norm 1.0
    rows = healthy(range(10)) + [(s, "1.0", "1.0") for s in range(10, 16)]
    code, output = run_audit(step_log(tmp_path / "steps.csv", rows), tmp_path / "run")
    assert code == 1, output
    assert "INV-TRAIN-007" in output and "Traceback" not in output
    audited = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert audited["stopped_at"]["invariant"] == "INV-TRAIN-007"
    assert audited["stopped_at"]["step"] == 14  # steps 10-14: five exact repeats
    record = load_verdict(tmp_path / "run").invariants["INV-TRAIN-007"]
    assert record.status == "fail" and record.violations == 1


def test_a_healthy_log_passes(tmp_path: Path) -> None:
    code, output = run_audit(step_log(tmp_path / "steps.csv", healthy(range(20))), tmp_path / "r")
    assert code == 0, output
    verdict = load_verdict(tmp_path / "r")
    assert verdict.invariants["INV-TRAIN-007"].status == "pass"
    assert verdict.invariants["INV-TRAIN-007"].evaluations == 16  # from the 5th row on
    assert verdict.invariants["INV-TRAIN-008"].evaluations == 20


def test_empty_grad_norm_cells_are_metric_presence_warnings(tmp_path: Path) -> None:
    rows = [(s, loss, "" if s in (3, 7) else norm) for s, loss, norm in healthy(range(10))]
    log = step_log(tmp_path / "steps.csv", rows)
    outcome = CliRunner().invoke(
        audit, [str(log), *MAPS, "--only", "INV-TRAIN-008", "--out", str(tmp_path / "r")]
    )
    assert outcome.exit_code == 0, outcome.output  # GATE-TRAIN-008 is informational
    record = load_verdict(tmp_path / "r").invariants["INV-TRAIN-008"]
    assert (record.status, record.evaluations, record.violations) == ("warn", 10, 2)
    assert record.worst is not None and "non-finite grad_norm" in record.worst.detail


def test_a_log_without_a_required_column_names_it(tmp_path: Path) -> None:
    log = tmp_path / "loss_only.csv"
    log.write_text("step,loss\n" + "".join(f"{s},{4.0 - s / 50}\n" for s in range(8)))
    with pytest.raises(AuditError, match=r"unmapped observations: grad_norm \(for INV-TRAIN-008"):
        audit_metrics(
            log,
            None,
            None,
            {},
            {"step": "step", "loss": "loss"},
            tmp_path / "a",
            only=["INV-TRAIN-008"],
        )
    outcome = CliRunner().invoke(
        audit,
        [
            str(log),
            "--map",
            "step",
            "--map",
            "loss",
            "--only",
            "INV-TRAIN-008",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert outcome.exit_code == 2 and "grad_norm (for INV-TRAIN-008 at step)" in outcome.output
    assert not (tmp_path / "b").exists()
