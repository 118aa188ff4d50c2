"""``contracts audit`` replays C-TRAIN-CONVERGENCE: a log whose val loss plateaus stops the
replay at the validation where the run would have stopped early (status early_stop, exit 0,
the final target judged on the last val loss seen); a log that keeps improving passes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from traingate_cli.run_cmds import audit

from traingate.ci.audit import audit_metrics
from traingate.ci.runcheck import check_run
from traingate.contract.presets import shipped
from traingate.contract.regime import Finetune
from traingate.runtime.verdict import run_status

CONVERGENCE = shipped("C-TRAIN-CONVERGENCE")[0]
MAPPING = {"step": "step", "epoch": "epoch", "loss": "loss", "val": "val_loss"}
TARGET = {"target_val_loss": 2.5}
# best 2.5 at epoch 1, then three validations without a new best: patience 3 runs out at 4
PLATEAU = [3.0, 2.5, 2.6, 2.5, 2.55, 2.4, 2.3]
IMPROVING = [3.0, 2.8, 2.7, 2.6, 2.55, 2.5]


def write_log(path: Path, val_losses: list[float]) -> Path:
    """Two train steps, then a validation row, per epoch (JSON lines)."""
    rows: list[dict[str, float]] = []
    for epoch, val in enumerate(val_losses):
        rows += [{"step": 2 * epoch + i, "loss": 3.0 - 0.01 * epoch} for i in range(2)]
        rows.append({"step": 2 * epoch + 1, "epoch": epoch, "val": val})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_plateau_stops_the_replay_early(tmp_path: Path) -> None:
    log = write_log(tmp_path / "plateau.jsonl", PLATEAU)
    run_dir = tmp_path / "run"
    done = audit_metrics(log, [CONVERGENCE], Finetune(), TARGET, MAPPING, run_dir)
    verdict = done.verdict
    assert verdict.ok and run_status(verdict) == "early_stop"
    assert verdict.early_stop is not None
    assert (verdict.early_stop.invariant, verdict.early_stop.epoch) == ("INV-CONV-001", 4)
    stop = done.audit["early_stop_at"]
    assert (stop["row"], stop["invariant"], stop["epoch"]) == (15, "INV-CONV-001", 4)
    assert done.audit["stopped_at"] is None  # no abort
    assert done.audit["replayed"] == 15 and done.audit["rows"] == 21
    patience = verdict.invariants["INV-CONV-001"]
    assert (patience.status, patience.evaluations, patience.violations) == ("warn", 5, 1)
    target = verdict.invariants["INV-CONV-002"]  # judged on 2.55, the last val loss replayed
    assert (target.status, target.last.observed) == ("warn", 2.55)  # type: ignore[union-attr]
    result = check_run(run_dir)
    assert result.exit_code == 0 and result.to_dict()["status"] == "early_stop"
    outcome = CliRunner().invoke(
        audit,
        [
            str(log),
            "--contracts",
            str(CONVERGENCE),
            "--param",
            "target_val_loss=2.5",
            *[a for col, obs in MAPPING.items() for a in ("--map", f"{col}={obs}")],
            "--out",
            str(tmp_path / "cli"),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "early stop at row 15 by INV-CONV-001" in outcome.output
    assert "note: the run stopped early at step 9, epoch 4: INV-CONV-001" in outcome.output


def test_a_log_that_keeps_improving_passes(tmp_path: Path) -> None:
    log = write_log(tmp_path / "improving.jsonl", IMPROVING)
    done = audit_metrics(log, [CONVERGENCE], Finetune(), TARGET, MAPPING, tmp_path / "run")
    verdict = done.verdict
    assert verdict.ok and verdict.early_stop is None and done.audit["early_stop_at"] is None
    assert done.audit["replayed"] == done.audit["rows"] == 18
    statuses = {i: (r.status, r.evaluations) for i, r in verdict.invariants.items()}
    assert statuses == {"INV-CONV-001": ("pass", 6), "INV-CONV-002": ("pass", 1)}
    assert check_run(tmp_path / "run").to_dict()["status"] == "pass"
