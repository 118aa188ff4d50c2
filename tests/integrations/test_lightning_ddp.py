"""TraingateCallback under Lightning DDP: 2 gloo ranks on CPU, one goes bad, both stop.

Lightning's ``strategy="ddp"`` re-launches the running script for rank 1, so the run is a
script written to ``tmp_path`` and run in a subprocess with a timeout. Rank 1's loss is NaN
at step 3 while its gradients stay finite (a NaN constant added to the loss), so only rank 1
sees the violation: the Guard's all-reduce must make rank 0 stop at the same step too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from traingate.ci.runcheck import check_run
from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict

from .conftest import run_script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCRIPT = r"""
import json, sys, warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traingate.contract.shipped import shipped_contracts_dir
from traingate.integrations.lightning import TraingateCallback

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
out = Path(sys.argv[1])
BAD_RANK, BAD_STEP = 1, 3


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(8, 1)
        self.before_bad = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        if self.global_step == BAD_STEP:
            self.before_bad = [p.detach().clone() for p in self.parameters()]
            if self.global_rank == BAD_RANK:
                loss = loss + torch.tensor(float("nan"))  # NaN loss, finite gradients
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


g = torch.Generator().manual_seed(1)
x = torch.randn(64, 8, generator=g)
y = 0.3 * x @ torch.randn(8, 1, generator=g)
data = TensorDataset(x, y)
gate = TraingateCallback(
    [shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"],
    run_dir=out / "run",
    only=["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-005"],
    on_violation="stop",
)
model = Tiny()
trainer = pl.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs=3, callbacks=[gate],
    enable_progress_bar=False, enable_model_summary=False, logger=False,
    enable_checkpointing=False, default_root_dir=out, num_sanity_val_steps=0,
)
trainer.fit(model, DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
stopped = gate.stopped_by
(out / f"rank-{trainer.global_rank}.json").write_text(json.dumps({
    "world": trainer.world_size,
    "invariant": stopped.invariant_id if stopped else None,
    "step": stopped.step if stopped else None,
    "rank": stopped.rank if stopped else None,
    "global_step": trainer.global_step,
    "unchanged": model.before_bad is not None and all(
        torch.equal(a, b.detach()) for a, b in zip(model.before_bad, model.parameters())
    ),
}))
"""


def test_one_bad_rank_stops_both_with_one_verdict(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "ddp_run.py", SCRIPT, str(tmp_path), timeout=90)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        assert seen["world"] == 2
        assert (seen["invariant"], seen["step"], seen["rank"]) == ("INV-TRAIN-001", 3, 1)
        assert seen["unchanged"]  # neither rank applied the bad step
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 4
    verdict = load_verdict(tmp_path / "run")
    assert verdict.world_size == 2
    assert verdict.aborted_by is not None
    assert (verdict.aborted_by.invariant, verdict.aborted_by.rank) == ("INV-TRAIN-001", 1)
    events = list(read_evidence(tmp_path / "run" / "evidence.jsonl"))
    assert [e["event"] for e in events].count("start") == 1  # one writer: rank 0
    assert [e["event"] for e in events].count("end") == 1
    assert not check_run(tmp_path / "run").ok
