"""Resuming into a run dir: a crash's torn evidence tail, the metrics history, and a resume
that would change the run (issue 9, defects 3-5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from traingate.ci.runcheck import check_run
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.evidence import read_evidence
from traingate.runtime.guard import Guard
from traingate.runtime.rundir import ConfigChangeError

from .conftest import CLASSES, WriteContract, divergence, finite_step

STEPS = [2.1, 2.0, 1.95, 1.9, 1.85, 1.8, 1.7, 1.75]
VALS = [2.0, 1.8, 1.7, 1.6]


def feed(guard: Guard, epochs: range) -> None:
    for epoch in epochs:
        for step in (2 * epoch, 2 * epoch + 1):
            guard.step(step, loss=STEPS[step], grad_norm=0.5)
        guard.validation(epoch, val_loss=VALS[epoch])


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(run_dir / "metrics.parquet").to_pylist()


@pytest.fixture
def contract(write_contract: WriteContract) -> Path:
    return write_contract([divergence(), finite_step()])


def crash_after_checkpoint(contract: Path, run_dir: Path) -> dict[str, Any]:
    """Epochs 0-1, a checkpoint, epoch 2 (lost), then a host crash mid-line: no close."""
    guard = Guard([contract], regime=FromScratch(CLASSES), run_dir=run_dir)
    feed(guard, range(2))
    state = json.loads(json.dumps(guard.state_dict()))
    feed(guard, range(2, 3))
    assert guard.evidence is not None
    guard.evidence.write("summary", step=5)
    guard.evidence._fh.write('{"event": "summary", "step": 6, "tal')  # killed mid-write
    guard.evidence._fh.flush()
    return state


def test_a_torn_tail_is_repaired_and_the_resumed_run_is_gateable(
    contract: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    state = crash_after_checkpoint(contract, run_dir)
    with Guard([contract], regime=FromScratch(CLASSES), run_dir=run_dir, resume=True) as guard:
        guard.load_state_dict(state)
        feed(guard, range(2, 4))
    events = list(read_evidence(run_dir / "evidence.jsonl"))
    repaired = [e for e in events if e["event"] == "repaired"]
    assert len(repaired) == 1 and repaired[0]["bytes_removed"] == len(
        '{"event": "summary", "step": 6, "tal'
    )
    result = check_run(run_dir)
    assert result.exit_code == 0, result.failures
    assert {i.id: i.evaluations for i in result.invariants} == {
        "INV-TEST-005": 4,
        "INV-TEST-001": 8,
    }


def test_metrics_after_a_resume_equal_an_uninterrupted_runs(contract: Path, tmp_path: Path) -> None:
    with Guard([contract], regime=FromScratch(CLASSES), run_dir=tmp_path / "whole") as whole:
        feed(whole, range(4))
    run_dir = tmp_path / "run"
    state = crash_after_checkpoint(contract, run_dir)
    for _ in range(2):  # resumed twice from the same checkpoint: still one history
        with Guard([contract], regime=FromScratch(CLASSES), run_dir=run_dir, resume=True) as g:
            g.load_state_dict(state)
            feed(g, range(2, 4))
    assert metrics(run_dir) == metrics(tmp_path / "whole")


def test_a_resume_that_changes_the_regime_is_refused_unless_allowed(
    contract: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    state = crash_after_checkpoint(contract, run_dir)
    before = (run_dir / "evidence.jsonl").read_bytes()
    with pytest.raises(ConfigChangeError, match="would change the run's regime"):
        Guard([contract], regime=Finetune(), run_dir=run_dir, resume=True)
    assert (run_dir / "evidence.jsonl").read_bytes() == before  # nothing written, not repaired
    with pytest.raises(ConfigChangeError, match=r"config: \{\} → \{'lr': 0.1\}"):
        Guard(
            [contract],
            regime=FromScratch(CLASSES),
            run_dir=run_dir,
            resume=True,
            config={"lr": 0.1},
        )
    with Guard(
        [contract], regime=Finetune(), run_dir=run_dir, resume=True, allow_config_change=True
    ) as guard:
        guard.load_state_dict(state)
        feed(guard, range(2, 4))
    changes = [
        e for e in read_evidence(run_dir / "evidence.jsonl") if e["event"] == "config_change"
    ]
    assert list(changes[0]["changes"]) == ["regime"]
    assert any("a resume changed the run's regime" in n for n in check_run(run_dir).notes)
