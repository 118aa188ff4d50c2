"""The trainer honours C-TRAIN-CONVERGENCE's early stop: a plateau ends the run after its
validation with a checkpoint, the final point still judges the target, and ``trainer
pretrain`` exits 0 naming the early stop; ``min_epochs`` holds the stop back."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.trainer_cmd import cli

from traingate.contract.presets import shipped
from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict, run_status
from traingate.train.checkpoint import step_checkpoint_path
from traingate.train.config import PretrainConfig
from traingate.train.pretrain import pretrain

TINY = {"batch_size": 2, "block_size": 32, "eval_blocks": 2, "export_onnx": False}
# min_delta 100: no validation after the first can improve on it, so patience 1 stops at
# epoch 1 (the first validation always sets the first best)
NO_IMPROVEMENT = "      patience: 1\n      min_epochs: {min_epochs}\n      min_delta: 100.0\n"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest)."""


def impatient(tmp_path: Path, min_epochs: int = 0) -> Path:
    """The shipped convergence contract with a patience no tiny run can satisfy."""
    text = shipped("C-TRAIN-CONVERGENCE")[0].read_text(encoding="utf-8")
    shipped_params = "      patience: 3\n      min_epochs: 0\n      min_delta: 0.0\n"
    assert shipped_params in text
    path = tmp_path / f"impatient-{min_epochs}.yaml"
    path.write_text(text.replace(shipped_params, NO_IMPROVEMENT.format(min_epochs=min_epochs)))
    return path


def config(out: Path, data: Path, contract: Path, **fields: object) -> PretrainConfig:
    """Six steps validating each one, gated by ``contract`` alone."""
    base: dict[str, object] = {
        **TINY,
        "out": out,
        "data": data,
        "contracts": [contract],
        "max_steps": 6,
        "eval_every": 1,
        "checkpoint_every": 100,
        "progress": False,
        "target_val_loss": 100.0,
    }
    return PretrainConfig(**{**base, **fields})  # type: ignore[arg-type]


def test_a_plateau_stops_the_run_early_and_cleanly(tmp_path: Path, corpus: dict[str, Path]) -> None:
    out = tmp_path / "run"
    result = pretrain(config(out, corpus["txt"], impatient(tmp_path)))
    assert result.early_stopped and not result.interrupted
    assert result.steps == 2 and len(result.val_losses) == 2  # stopped after epoch 1
    saved = step_checkpoint_path(out / "checkpoints", 2)
    assert result.checkpoints == [saved] and saved.is_file()  # saved at the stop
    verdict = result.verdict
    assert verdict.ok and run_status(verdict) == "early_stop"
    assert verdict.early_stop is not None
    assert (verdict.early_stop.invariant, verdict.early_stop.epoch) == ("INV-CONV-001", 1)
    assert (verdict.early_stop.step, verdict.last_step) == (2, 2)
    # the final point ran after the stop: the target (the run parameter, 100) was judged
    target = verdict.invariants["INV-CONV-002"]
    assert (target.status, target.evaluations) == ("pass", 1)
    assert verdict.params["target_val_loss"] == 100.0
    assert load_verdict(out).early_stop == verdict.early_stop
    events = [e["event"] for e in read_evidence(out / "evidence.jsonl")]
    assert events.count("early_stop") == 1 and events[-1] == "end"


def test_min_epochs_holds_the_early_stop_back(tmp_path: Path, corpus: dict[str, Path]) -> None:
    result = pretrain(config(tmp_path / "run", corpus["txt"], impatient(tmp_path, min_epochs=4)))
    assert result.early_stopped and result.steps == 4  # epoch 3 is the 4th validation
    assert result.verdict.early_stop is not None and result.verdict.early_stop.epoch == 3
    full = pretrain(config(tmp_path / "full", corpus["txt"], impatient(tmp_path, min_epochs=7)))
    assert not full.early_stopped and full.steps == 6 and full.verdict.early_stop is None
    assert run_status(full.verdict) == "pass"


def test_trainer_pretrain_exits_0_and_says_early_stop(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    out = tmp_path / "cli"
    args = ["pretrain", "--mode", "from-scratch", "--data", corpus["txt"], "--out", out]
    args += ["--contracts", impatient(tmp_path), "--max-steps", "6", "--eval-every", "1"]
    args += ["--batch-size", "2", "--block-size", "32", "--eval-blocks", "2", "--no-progress"]
    args += ["--no-export", "--target-val-loss", "100"]
    outcome = CliRunner().invoke(cli, [str(a) for a in args])
    assert outcome.exit_code == 0, outcome.output
    line = next(x for x in outcome.output.splitlines() if x.startswith("verdict:"))
    assert line.startswith("verdict: PASS")
    assert line.endswith("; early_stop at step 2, epoch 1 by INV-CONV-001")


def test_resuming_a_run_that_stopped_early_trains_no_further(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    out, contract = tmp_path / "run", impatient(tmp_path)
    first = pretrain(config(out, corpus["txt"], contract))
    assert first.early_stopped and first.steps == 2
    steps_before = [e for e in read_evidence(out / "evidence.jsonl") if e["event"] == "summary"]
    assert len(steps_before) == 2  # a summary per step (summary_every = eval_every = 1)
    again = pretrain(config(out, corpus["txt"], contract, resume=True, max_steps=12))
    assert again.early_stopped and again.steps == 2 and not again.val_losses[2:]
    assert again.verdict.ok and again.verdict.early_stop == first.verdict.early_stop
    events = list(read_evidence(out / "evidence.jsonl"))
    assert [e for e in events if e["event"] == "summary"] == steps_before  # no step was taken
    assert [e["event"] for e in events].count("early_stop") == 1
