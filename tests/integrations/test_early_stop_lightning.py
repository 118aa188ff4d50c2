"""The Lightning callback honours a ``stop`` invariant: ``guard.should_stop`` after a
validation sets ``trainer.should_stop`` (as ``EarlyStopping`` would), the fit ends after
that epoch, the final point still runs and the verdict (ok, status early_stop) passes
``contracts check``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")

from traingate.integrations.lightning import TraingateCallback

from .convergence import assert_ran_through, assert_stopped_early, patience_contract
from .test_lightning import BATCHES, TinyMLP, fit

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]
EPOCHS = 5


def run(tmp_path: Path, patience: int, min_delta: float) -> tuple[int, Path]:
    """Up to five epochs, validating after each; (optimizer steps taken, run dir)."""
    run_dir = tmp_path / "run"
    contract = patience_contract(tmp_path, patience=patience, min_delta=min_delta)
    t = fit(
        tmp_path, TinyMLP(), [TraingateCallback([contract], run_dir=run_dir)], max_epochs=EPOCHS
    )
    return t.global_step, run_dir


def test_should_stop_ends_the_fit_after_the_validation(tmp_path: Path) -> None:
    steps, run_dir = run(tmp_path, patience=1, min_delta=100.0)
    assert steps == 2 * BATCHES  # the second validation cannot beat the first by 100
    assert_stopped_early(run_dir, at_epoch=1)


def test_a_patient_run_fits_every_epoch(tmp_path: Path) -> None:
    steps, run_dir = run(tmp_path, patience=EPOCHS + 1, min_delta=0.0)
    assert steps == EPOCHS * BATCHES
    assert_ran_through(run_dir, validations=EPOCHS)
