"""``contracts check`` on a run a ``stop`` invariant ended early: it passes (an early stop is
no failure), says so once, and re-derives the early stop from the evidence, so a verdict
that claims or hides one fails like any other tampering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import check

from traingate import Guard
from traingate.ci.report import render_report
from traingate.ci.runcheck import check_run
from traingate.contract.regime import Finetune

from .conftest import contract_yaml, gate, invariant
from .test_check_trusts_nothing import edit_verdict, problems, rechain

PLATEAU = [3.0, 2.5, 2.5, 2.5]  # patience 2: the stop comes at epoch 3


def contract_text(*, ship_blocking: bool = False) -> str:
    """A finite step invariant, convergence patience 2 (stop) and the final target (warn)."""
    return contract_yaml(
        "C-TEST-STOP",
        "1.0.0",
        "Early stop test contract",
        [
            invariant("INV-STP-001", "Finite", "finite", "step", {"observations": ["loss"]}),
            invariant(
                "INV-STP-002", "Patience", "convergence", "validation", {"patience": 2}, "stop"
            ),
            invariant(
                "INV-STP-003",
                "Target",
                "convergence",
                "final",
                {"target_val_loss": "target_val_loss"},
                "warn",
            ),
        ],
        [
            gate("GATE-STP-001", ["INV-STP-001"]),
            gate("GATE-STP-002", ["INV-STP-002"], ship_blocking=ship_blocking),
            gate("GATE-STP-003", ["INV-STP-003"], ship_blocking=False),
        ],
        parameters={"target_val_loss": {"type": "float", "min": 0, "required": False}},
    )


def train(contract: Path, run_dir: Path, losses: list[float]) -> Guard:
    """A loop honouring ``guard.should_stop`` after each validation, then its final point."""
    with Guard(
        [contract], regime=Finetune(), params={"target_val_loss": 2.6}, run_dir=run_dir
    ) as guard:
        for epoch, val_loss in enumerate(losses):
            guard.step(epoch, loss=3.0)
            guard.validation(epoch, val_loss=val_loss, step=epoch)
            if guard.should_stop:
                break
        guard.final(val_loss=val_loss)
    return guard


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "stop.yaml"
    path.write_text(contract_text())
    return path


@pytest.fixture
def stopped(contract: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "stopped"
    guard = train(contract, run_dir, [*PLATEAU, 2.4, 2.3])
    assert guard.should_stop and guard.last_step == 3  # the loop broke at the stop
    return run_dir


def test_an_early_stopped_run_passes_and_says_so_once(stopped: Path) -> None:
    result = check_run(stopped)
    assert result.exit_code == 0, result.failures
    early = [n for n in result.notes if "stopped early" in n]
    assert early == [
        "the run stopped early at step 3, epoch 3: INV-STP-002: epoch 3: val loss 2.5; no "
        "improvement of more than 0 on the best 2.5 for 2 validation(s) (patience 2)"
    ]
    report = result.to_dict()
    assert report["status"] == "early_stop"
    assert report["early_stop"] == {
        "invariant": "INV-STP-002",
        "reason": result.verdict.early_stop.reason,  # type: ignore[union-attr]
        "step": 3,
        "epoch": 3,
    }
    stop = {i.id: i for i in result.invariants}["INV-STP-002"]
    assert (stop.status, stop.outcome) == ("warn", "warn")
    assert stop.reason == "violated 1 time(s); the run stopped early (advisory)"
    target = {i.id: i for i in result.invariants}["INV-STP-003"]
    assert target.status == "pass"  # 2.5 <= 2.6, judged at the final point after the stop
    outcome = CliRunner().invoke(check, [str(stopped)])
    assert outcome.exit_code == 0 and "note: the run stopped early at step 3" in outcome.output


def test_the_report_shows_the_early_stop_under_the_verdict(stopped: Path, tmp_path: Path) -> None:
    page = render_report(stopped, tmp_path / "report.html", matplotlib=False).read_text()
    banner = '<p class="early" id="early-stop">Stopped early at step 3, epoch 3 by INV-STP-002: '
    assert page.count(banner) == 1
    assert page.index(banner) < page.index("<h2>Curves</h2>")  # read before the curves end
    assert page.count("the run stopped early at step 3, epoch 3: INV-STP-002") == 1  # notes


def test_a_final_target_warning_is_marked_on_the_last_val_loss(
    contract: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "short"
    with Guard(
        [contract], regime=Finetune(), params={"target_val_loss": 2.0}, run_dir=run_dir
    ) as guard:
        for epoch, val_loss in enumerate([3.0, 2.8]):
            guard.step(epoch, loss=3.0 - epoch / 10)
            guard.validation(epoch, val_loss=val_loss, step=epoch)
        guard.final(val_loss=2.8)
    page = render_report(run_dir, tmp_path / "report.html", matplotlib=False).read_text()
    val = page[page.index('<figure id="chart-val">') :]
    val = val[: val.index("</figure>")]
    assert "✕ INV-STP-003 warning: final val loss 2.8 vs target 2" in val  # on the curve
    assert "(not finite)" not in page
    train_chart = page[page.index('<figure id="chart-train">') :]
    assert "INV-STP-003" not in train_chart[: train_chart.index("</figure>")]


def test_a_run_that_keeps_improving_has_no_early_stop(contract: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "improving"
    guard = train(contract, run_dir, [3.0, 2.8, 2.6, 2.5])
    assert not guard.should_stop and guard.stop_reason is None
    result = check_run(run_dir)
    assert result.exit_code == 0 and result.to_dict()["status"] == "pass"
    assert result.verdict.early_stop is None
    assert not [n for n in result.notes if "stopped early" in n]


def test_a_verdict_that_hides_the_early_stop_fails(stopped: Path) -> None:
    edit_verdict(stopped, lambda data: data.update(early_stop=None))
    assert "early_stop: verdict.json says None, the evidence gives {'invariant': 'INV-STP-002'" in (
        problems(stopped)
    )


def test_a_verdict_that_claims_an_early_stop_fails(contract: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "improving"
    train(contract, run_dir, [3.0, 2.8, 2.6])
    claim = {"invariant": "INV-STP-002", "reason": "plateau", "step": 1, "epoch": 1}
    edit_verdict(run_dir, lambda data: data.update(early_stop=claim))
    assert "early_stop: verdict.json says {'invariant': 'INV-STP-002'" in problems(run_dir)


def test_a_forged_early_stop_event_fails(contract: Path, tmp_path: Path) -> None:
    """An early_stop line slipped into the evidence (chain recomputed) contradicts the end."""
    run_dir = tmp_path / "improving"
    train(contract, run_dir, [3.0, 2.8, 2.6])
    log = run_dir / "evidence.jsonl"
    lines = log.read_text().splitlines()
    forged: dict[str, Any] = {"event": "early_stop", "invariant": "INV-STP-002", "reason": "x"}
    lines.insert(-1, json.dumps({**forged, "step": 1, "epoch": 1}))
    log.write_text("\n".join(rechain(lines)) + "\n")
    found = problems(run_dir)
    assert "the end event says early_stop: None, the evidence gives {'invariant'" in found


def test_a_ship_blocking_gate_on_the_stop_invariant_fails_the_stopped_run(tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(contract_text(ship_blocking=True))
    run_dir = tmp_path / "strict"
    train(strict, run_dir, PLATEAU)
    result = check_run(run_dir)
    assert result.exit_code == 1
    assert (
        "INV-STP-002: violated 1 time(s) (on_violation: stop ended the run early, but it is "
        "required by a ship-blocking gate)" in result.failures
    )
