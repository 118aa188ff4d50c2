"""TraingateCallback in real ``Trainer.fit`` runs: a tiny MLP on synthetic data, CPU.

Each run gates the shipped pretraining contract's finite (001), gradient-norm (002) and
non-divergence (005) invariants under the finetune regime (epoch-0 cap 10.0): all three are
evaluable in a few steps, so a healthy run passes ``contracts check``.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from traingate.ci.runcheck import check_run
from traingate.contract.shipped import shipped_contracts_dir
from traingate.integrations.lightning import TraingateCallback
from traingate.runtime.guard import InvariantViolation
from traingate.runtime.verdict import load_verdict

torch.set_num_threads(1)
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]

CONTRACT = shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"
ONLY = ["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-005"]
BATCHES = 6  # optimizer steps per epoch (batch size 8)


class TinyMLP(pl.LightningModule):
    """A 2-layer MLP regressing a fixed linear target; ``bad`` breaks one chosen step."""

    def __init__(self, bad: str | None = None, at_step: int = 3, sanity_loss: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
        self.bad, self.at_step, self.sanity_loss = bad, at_step, sanity_loss
        self.batch_losses: list[float] = []
        self.before_bad: list[torch.Tensor] | None = None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.batch_losses.append(loss.item())
        if self.global_step == self.at_step and self.bad is not None:
            self.before_bad = [p.detach().clone() for p in self.parameters()]
            if self.bad == "nan":
                loss = loss * float("nan")
            elif self.bad == "crash":
                raise RuntimeError("boom in training_step")
            elif self.bad == "interrupt":
                raise KeyboardInterrupt
        if self.bad == "explode":
            loss = loss * 1e6  # gradient norm far above 100 on every step, before clipping
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        if self.trainer.sanity_checking:
            loss = loss + self.sanity_loss  # above the cap if the sanity check were gated
        self.log("val_loss", loss)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCHES * 8, 8, generator=g)
    y = 0.3 * x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(BATCHES * 8, 1, generator=g)
    return (
        DataLoader(TensorDataset(x, y), batch_size=8),
        DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8),
    )


def gate(run_dir: Path, **kwargs: Any) -> TraingateCallback:
    return TraingateCallback([CONTRACT], run_dir=run_dir, only=ONLY, **kwargs)


def trainer(tmp_path: Path, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("max_epochs", 2)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


def fit(tmp_path: Path, model: TinyMLP, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    ckpt_path = kwargs.pop("ckpt_path", None)
    t = trainer(tmp_path, callbacks, **kwargs)
    t.fit(model, *loaders(), ckpt_path=ckpt_path)
    return t


def evaluations(run_dir: Path) -> dict[str, tuple[int, int]]:
    verdict = load_verdict(run_dir)
    return {i: (r.evaluations, r.violations) for i, r in verdict.invariants.items()}


def test_a_healthy_run_passes_contracts_check_and_logs(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="logs")
    fit(tmp_path, TinyMLP(), [gate(tmp_path / "run")], logger=logger, log_every_n_steps=2)
    check = check_run(tmp_path / "run", [CONTRACT])
    assert check.ok, check.problems
    assert evaluations(tmp_path / "run") == {
        "INV-TRAIN-001": (2 * BATCHES, 0),
        "INV-TRAIN-002": (2 * BATCHES, 0),
        "INV-TRAIN-005": (2, 0),
    }
    with open(logger.log_dir + "/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [r["traingate/ok"] for r in rows if r.get("traingate/ok")]
    assert ok == ["1.0"]
    assert any(r.get("traingate/limit/INV-TRAIN-002") == "100.0" for r in rows)
    assert any(r.get("traingate/limit/INV-TRAIN-005") == "10.0" for r in rows)
    assert {r["traingate/violations"] for r in rows if r.get("traingate/violations")} == {"0.0"}


def test_the_sanity_check_is_not_validation_zero(tmp_path: Path) -> None:
    # the sanity check's val loss is 1000 (cap 10): gated, it would abort the run
    model = TinyMLP(sanity_loss=1000.0)
    gated = gate(tmp_path / "run")
    fit(tmp_path, model, [gated], num_sanity_val_steps=2, max_epochs=3)
    assert check_run(tmp_path / "run").ok
    assert gated.validations == 3
    guard = gated.guard
    assert guard is not None
    epochs = [
        e
        for p, e in zip(guard.metrics.point, guard.metrics.epoch, strict=True)
        if p == "validation"
    ]
    assert sorted(set(epochs)) == [0, 1, 2]
    assert evaluations(tmp_path / "run")["INV-TRAIN-005"] == (3, 0)


@pytest.mark.parametrize("mode", ["raise", "stop"])
def test_a_nan_loss_is_stopped_before_the_optimizer_step(tmp_path: Path, mode: str) -> None:
    model = TinyMLP(bad="nan", at_step=3)
    gated = gate(tmp_path / "run", on_violation=mode)
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    if mode == "raise":
        with pytest.raises(InvariantViolation) as caught:
            fit(tmp_path, model, [gated])
        violation = caught.value
    else:
        with pytest.warns(UserWarning, match="stopping the run"):
            t = fit(tmp_path, model, [gated, last], enable_checkpointing=True)
        assert t.should_stop and gated.stopped_by is not None
        violation = gated.stopped_by
        saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
        assert saved["global_step"] == 4  # the checkpoint callback still ran, after the stop
    assert (violation.invariant_id, violation.step) == ("INV-TRAIN-001", 3)
    assert model.before_bad is not None
    for before, after in zip(model.before_bad, model.parameters(), strict=True):
        assert torch.equal(before, after.detach())  # the NaN step never reached the weights
    verdict = load_verdict(tmp_path / "run")
    assert verdict.aborted_by is not None and verdict.aborted_by.invariant == "INV-TRAIN-001"
    assert not check_run(tmp_path / "run").ok


def test_exploding_gradients_fire_on_the_pre_clip_norm(tmp_path: Path) -> None:
    model = TinyMLP(bad="explode")
    with pytest.raises(InvariantViolation) as caught:
        fit(tmp_path, model, [gate(tmp_path / "run")], gradient_clip_val=1.0)
    violation = caught.value
    assert violation.invariant_id == "INV-TRAIN-002"
    assert violation.step == 4  # patience 5: steps 0..4 out of range
    assert violation.observed > 100  # clipping at 1.0 would have hidden it
    assert evaluations(tmp_path / "run")["INV-TRAIN-002"] == (5, 1)


def test_the_step_loss_is_the_accumulated_mean(tmp_path: Path) -> None:
    model = TinyMLP()
    gated = gate(tmp_path / "run")
    fit(tmp_path, model, [gated], max_epochs=1, accumulate_grad_batches=2)
    guard = gated.guard
    assert guard is not None
    seen = [
        v
        for p, n, v in zip(
            guard.metrics.point, guard.metrics.name, guard.metrics.value, strict=True
        )
        if p == "step" and n == "loss"
    ]
    pairs = model.batch_losses
    expected = [(pairs[i] + pairs[i + 1]) / 2 for i in range(0, len(pairs), 2)]
    assert seen == pytest.approx(expected, rel=1e-6)
    assert len(seen) == BATCHES // 2


def test_a_crash_leaves_a_verdict(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path, TinyMLP(bad="crash", at_step=2), [gate(tmp_path / "run")])
    verdict = load_verdict(tmp_path / "run")
    assert verdict.crashed == "RuntimeError: boom in training_step"
    assert verdict.last_step == 1
    check = check_run(tmp_path / "run")
    assert not check.ok
    assert any("crashed" in p for p in check.problems)


def test_a_crash_that_bypasses_on_exception_still_leaves_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a ddp_spawn worker runs fit_loop.run without Lightning's on_exception/teardown around
    # it (those run in the launching process): here they are switched off in-process
    from lightning.pytorch.trainer import call

    monkeypatch.setattr(call, "_interrupt", lambda trainer, exception: None)
    gated = gate(tmp_path / "run")
    t = trainer(tmp_path, [gated])
    with pytest.raises(RuntimeError, match="boom"):
        t.fit(TinyMLP(bad="crash", at_step=2), *loaders())
    verdict = load_verdict(tmp_path / "run")
    assert (verdict.crashed, verdict.last_step) == ("RuntimeError: boom in training_step", 1)
    assert not check_run(tmp_path / "run").ok
    wrapped = t.fit_loop.run
    gated._guard_fit_loop(t)  # a later fit with the same trainer wraps the loop once
    assert t.fit_loop.run is wrapped
    assert wrapped.__wrapped__.__func__ is type(t.fit_loop).run


def test_a_keyboard_interrupt_is_recorded_as_an_interruption(tmp_path: Path) -> None:
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into exit(1)
            fit(tmp_path, TinyMLP(bad="interrupt", at_step=2), [gate(tmp_path / "run")])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT from then on
    verdict = load_verdict(tmp_path / "run")
    assert verdict.interrupted == "interrupted by KeyboardInterrupt at step 1"
    assert verdict.crashed is None
    assert not check_run(tmp_path / "run").ok


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resume_from_a_ckpt_continues_the_tallies(tmp_path: Path) -> None:
    fit(tmp_path / "a", TinyMLP(), [gate(tmp_path / "a" / "run")], max_epochs=4)
    first = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fit(
        tmp_path / "b",
        TinyMLP(),
        [gate(tmp_path / "b" / "run"), first],
        max_epochs=2,
        enable_checkpointing=True,
    )
    assert evaluations(tmp_path / "b" / "run")["INV-TRAIN-005"] == (2, 0)
    resumed = gate(tmp_path / "b" / "run")
    again = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fit(
        tmp_path / "b",
        TinyMLP(),
        [resumed, again],
        enable_checkpointing=True,
        max_epochs=4,
        ckpt_path=tmp_path / "ckpt" / "last.ckpt",
    )
    assert resumed.validations == 4
    assert evaluations(tmp_path / "b" / "run") == evaluations(tmp_path / "a" / "run")
    a, b = load_verdict(tmp_path / "a" / "run"), load_verdict(tmp_path / "b" / "run")
    assert b.last_step == a.last_step == 4 * BATCHES - 1
    last_a, last_b = (v.invariants["INV-TRAIN-005"].last for v in (a, b))
    assert last_b is not None and last_a is not None
    assert last_b.observed == pytest.approx(last_a.observed, rel=1e-5)
    check = check_run(tmp_path / "b" / "run")
    assert check.ok, check.problems


def test_a_run_dir_holding_a_run_is_refused_without_a_checkpoint(tmp_path: Path) -> None:
    fit(tmp_path, TinyMLP(), [gate(tmp_path / "run")], max_epochs=1)
    with pytest.raises(Exception, match="already holds a run"):
        fit(tmp_path, TinyMLP(), [gate(tmp_path / "run")], max_epochs=1)


def test_unknown_guard_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="run_dri"):
        TraingateCallback(run_dri="x")
    with pytest.raises(ValueError, match="on_violation"):
        TraingateCallback(on_violation="ignore")  # type: ignore[arg-type]


def test_importing_traingate_imports_no_lightning() -> None:
    probe = "import sys, traingate, traingate.integrations; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_state_dict_round_trips_through_json(tmp_path: Path) -> None:
    gated = gate(tmp_path / "run")
    fit(tmp_path, TinyMLP(), [gated], max_epochs=1)
    state = gated.state_dict()
    assert json.loads(state["guard"])["tallies"]["INV-TRAIN-005"]["evaluations"] == 1
    assert state["validations"] == 1
