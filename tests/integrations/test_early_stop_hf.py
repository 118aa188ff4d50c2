"""The transformers callback honours a ``stop`` invariant: ``guard.should_stop`` after an
evaluation sets ``control.should_training_stop``, the run ends there and its verdict (ok,
status early_stop) passes ``contracts check``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from traingate import FromScratch
from traingate.integrations.huggingface import TraingateCallback

from .convergence import assert_ran_through, assert_stopped_early, patience_contract
from .test_huggingface import VOCAB, trainer


def run(tmp_path: Path, patience: int, min_delta: float) -> tuple[int, Path]:
    """Eight optimizer steps evaluating every one; (steps trained, run dir)."""
    run_dir = tmp_path / "run"
    callback = TraingateCallback(
        [patience_contract(tmp_path, patience=patience, min_delta=min_delta)],
        regime=FromScratch(vocab_size=VOCAB),
        run_dir=run_dir,
    )
    t = trainer(tmp_path / "out", callback, eval_steps=1, gradient_accumulation_steps=1)
    t.train()
    return t.state.global_step, run_dir


def test_should_stop_ends_training_after_the_evaluation(tmp_path: Path) -> None:
    steps, run_dir = run(tmp_path, patience=1, min_delta=100.0)
    assert steps == 2  # the second evaluation cannot beat the first by 100
    assert_stopped_early(run_dir, at_epoch=1)


def test_a_patient_run_trains_every_step(tmp_path: Path) -> None:
    steps, run_dir = run(tmp_path, patience=9, min_delta=0.0)
    assert steps == 8
    assert_ran_through(run_dir, validations=8)


@pytest.mark.filterwarnings("ignore:INV-TRAIN-003 .loss_spike. needs 100 steps")  # 8 steps
@pytest.mark.parametrize(("target", "status"), [(100.0, "pass"), (0.01, "warn")])
def test_the_final_target_is_judged_on_the_last_eval_loss(
    tmp_path: Path, target: float, status: str
) -> None:
    """The default preset's INV-CONV-002 sees the last ``eval_loss`` at ``on_train_end``."""
    callback = TraingateCallback(
        regime=FromScratch(vocab_size=VOCAB),
        params={"target_val_loss": target},
        run_dir=tmp_path / "run",
    )
    trainer(tmp_path / "out", callback).train()
    assert callback.verdict is not None
    target_record = callback.verdict.invariants["INV-CONV-002"]
    assert (target_record.status, target_record.evaluations) == (status, 1)
    last_eval = [h["eval_loss"] for h in callback.trainer.state.log_history if "eval_loss" in h]
    assert target_record.last is not None
    assert target_record.last.observed == pytest.approx(last_eval[-1])
