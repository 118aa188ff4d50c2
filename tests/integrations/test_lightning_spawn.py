"""TraingateCallback under ``strategy="ddp_spawn"``: a crash inside a worker gets a verdict.

Lightning runs ``on_exception`` and ``teardown`` only in the launching process, which holds
no Guard (the Guard lives in the spawned workers), so the callback wraps the worker's
``trainer.fit_loop.run`` and closes the Guard there before the exception leaves it. Two gloo
ranks on CPU; the module raises ``RuntimeError`` at step 3 on rank 0, the rank that writes
the run dir: the verdict records that exception and ``check_run`` fails the run. (The same
script with the crash on rank 1 leaves rank 0 in a collective that fails once rank 1's
process is gone, gloo's "Connection closed by peer", which rank 0 records as the crash; it
is not run here to keep the suite's time down: each spawn re-imports Lightning in both
workers.) The script runs in a subprocess with a deadline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")

from traingate.ci.runcheck import check_run
from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict

from .conftest import run_script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BAD_STEP = 3

SCRIPT = r"""
import sys, warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traingate.contract.shipped import shipped_contracts_dir
from traingate.integrations.lightning import TraingateCallback

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
BAD_RANK, BAD_STEP = int(sys.argv[2]), int(sys.argv[3])


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.global_step == BAD_STEP and self.global_rank == BAD_RANK:
            raise RuntimeError(f"boom on rank {self.global_rank}")
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


if __name__ == "__main__":  # the spawned workers import this file again
    out = Path(sys.argv[1])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g)
    y = 0.3 * x @ torch.randn(8, 1, generator=g)
    gate = TraingateCallback(
        [shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"],
        run_dir=out / "run",
        only=["INV-TRAIN-001", "INV-TRAIN-002"],
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2, callbacks=[gate],
        enable_progress_bar=False, enable_model_summary=False, logger=False,
        enable_checkpointing=False, default_root_dir=out, num_sanity_val_steps=0,
    )
    try:
        trainer.fit(Tiny(), DataLoader(TensorDataset(x, y), batch_size=8))
    except Exception as exc:  # the worker's error, re-raised in the launching process
        print("launcher saw:", type(exc).__name__, exc, flush=True)
        assert gate.guard is None  # this process never held the Guard
        sys.exit(3)
    sys.exit(0)
"""


def test_a_crash_in_a_spawned_worker_leaves_a_crashed_verdict(tmp_path: Path) -> None:
    bad_rank = 0
    args = (str(tmp_path), str(bad_rank), str(BAD_STEP))
    proc = run_script(tmp_path, "spawn_run.py", SCRIPT, *args, timeout=200)
    output = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 3, output
    assert "launcher saw: ProcessRaisedException" in proc.stdout, output
    assert f"boom on rank {bad_rank}" in proc.stdout, output  # the worker's traceback
    verdict = load_verdict(tmp_path / "run")
    assert verdict.world_size == 2
    assert not verdict.ok and verdict.aborted_by is None and verdict.interrupted is None
    assert verdict.crashed == "RuntimeError: boom on rank 0"
    assert verdict.last_step == BAD_STEP - 1
    events = [e["event"] for e in read_evidence(tmp_path / "run" / "evidence.jsonl")]
    assert events.count("start") == events.count("end") == 1  # closed once
    check = check_run(tmp_path / "run")
    assert not check.ok
    assert any("crashed" in p for p in check.problems), check.problems
