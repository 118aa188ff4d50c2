"""TraingateCallback in a real transformers.Trainer: a tiny random GPT-2 on synthetic tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from traingate import FromScratch, InvariantViolation
from traingate.ci.runcheck import check_run
from traingate.contract.shipped import shipped_contracts_dir
from traingate.integrations.huggingface import STATE_FILE, TraingateCallback

torch.set_num_threads(1)

VOCAB = 64
ONLY = ["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-005"]
CONTRACT = shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"


class Tokens(torch.utils.data.Dataset):
    """Fixed random token rows; labels are the inputs (the model shifts them)."""

    def __init__(self, rows: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (rows, 16), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class At(TrainerCallback):
    """Does ``action(control)`` at the end of optimizer step ``step`` (1-based)."""

    def __init__(self, step: int, action: Any) -> None:
        self.step, self.action = step, action

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step == self.step:
            self.action(control)


class Snapshots(TrainerCallback):
    """Keeps a copy of every parameter after each applied optimizer step."""

    def __init__(self) -> None:
        self.last: dict[str, torch.Tensor] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.last = {n: p.detach().clone() for n, p in kw["model"].named_parameters()}


class NanLossAt(Trainer):
    """A Trainer whose loss turns NaN at one optimizer step (0-based ``nan_step``)."""

    nan_step = -1

    def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        loss = super().compute_loss(model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step == self.nan_step else loss


def model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=32)
    return GPT2LMHeadModel(config)


def gate(run_dir: Path, **kwargs: Any) -> TraingateCallback:
    return TraingateCallback(
        [CONTRACT], regime=FromScratch(vocab_size=VOCAB), run_dir=run_dir, only=ONLY, **kwargs
    )


def trainer(
    out: Path,
    callback: TraingateCallback,
    *,
    cls: type[Trainer] = Trainer,
    callbacks: tuple[TrainerCallback, ...] = (),
    net: GPT2LMHeadModel | None = None,
    **args: Any,
) -> Trainer:
    settings: dict[str, Any] = {
        "max_steps": 8,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "gradient_accumulation_steps": 2,
        "learning_rate": 1e-3,
        "eval_strategy": "steps",
        "eval_steps": 4,
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    settings.update(args)
    built = cls(
        model=net if net is not None else model(),
        args=TrainingArguments(output_dir=str(out), **settings),
        train_dataset=Tokens(64, seed=1),
        eval_dataset=Tokens(8, seed=2),
        callbacks=list(callbacks),
    )
    return callback.attach(built)


def verdict(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "verdict.json").read_text(encoding="utf-8"))


def test_a_healthy_run_passes_the_gate_and_logs_traingate_keys(tmp_path: Path) -> None:
    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback)
    t.train()
    result = check_run(tmp_path / "run")
    assert result.ok, result
    v = verdict(tmp_path / "run")
    # every optimizer step (8) and evaluation (steps 4 and 8) was judged
    assert v["invariants"]["INV-TRAIN-001"]["evaluations"] == 8
    assert v["invariants"]["INV-TRAIN-002"]["evaluations"] == 8
    assert v["invariants"]["INV-TRAIN-005"]["evaluations"] == 2
    keys = {k for entry in t.state.log_history for k in entry}
    assert "traingate/limit/INV-TRAIN-005" in keys
    assert t.state.log_history[-1]["traingate/ok"] == 1.0
    assert t.state.log_history[-1]["traingate/status/INV-TRAIN-002"] == "pass"


def test_the_guard_sees_the_accumulated_loss_and_the_pre_clip_norm(tmp_path: Path) -> None:
    seen: list[tuple[float, float]] = []
    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback, max_steps=3, eval_steps=3, max_grad_norm=1e-6)
    callback.guard_kwargs["listeners"] = [
        lambda e: (
            seen.append((e.data["loss"], e.data["grad_norm"]))
            if e.kind == "metrics" and "loss" in e.data
            else None
        )
    ]
    t.train()
    logged = [(e["loss"], e["grad_norm"]) for e in t.state.log_history if "loss" in e]
    assert len(seen) == len(logged) == 3
    for (loss, norm), (hf_loss, hf_norm) in zip(seen, logged, strict=True):
        assert loss == pytest.approx(hf_loss, abs=1e-4)  # the Trainer logs it rounded
        assert norm == pytest.approx(hf_norm, rel=1e-5)  # the norm clipping returned
        assert norm > 1e-3  # far above the 1e-6 the gradients were clipped to


def test_a_nan_loss_raises_before_the_optimizer_step(tmp_path: Path) -> None:
    snaps = Snapshots()
    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback, cls=NanLossAt, callbacks=(snaps,))
    t.nan_step = 3
    with pytest.raises(InvariantViolation) as info:
        t.train()
    assert info.value.record.invariant_id == "INV-TRAIN-001"
    assert info.value.record.step == 3
    params = dict(t.model.named_parameters())
    assert snaps.last and all(torch.equal(params[n], w) for n, w in snaps.last.items())
    v = verdict(tmp_path / "run")
    assert v["aborted_by"]["invariant"] == "INV-TRAIN-001" and v["crashed"] is None
    assert not check_run(tmp_path / "run").ok


def test_stop_mode_ends_training_gracefully_without_applying_the_step(tmp_path: Path) -> None:
    before: dict[str, torch.Tensor] = {}

    def keep(control: Any) -> None:  # the weights after step index 1, before the NaN step
        before.update({n: p.detach().clone() for n, p in t.model.named_parameters()})

    callback = gate(tmp_path / "run", on_violation="stop")
    t = trainer(tmp_path / "out", callback, cls=NanLossAt, callbacks=(At(2, keep),))
    t.nan_step = 2
    t.train()  # no exception: the Trainer stopped itself
    assert t.state.global_step == 3  # the dropped step, then the loop ended
    assert callback.violation is not None
    assert before and all(torch.equal(p, before[n]) for n, p in t.model.named_parameters())
    v = verdict(tmp_path / "run")
    assert v["aborted_by"]["invariant"] == "INV-TRAIN-001" and v["last_step"] == 2


def test_exploding_pre_clip_gradients_fire_although_the_trainer_clips(tmp_path: Path) -> None:
    net = model()
    for p in net.parameters():
        p.register_hook(lambda g: g * 1e6)
    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback, net=net, max_grad_norm=1.0)
    with pytest.raises(InvariantViolation) as info:
        t.train()
    record = info.value.record
    assert record.invariant_id == "INV-TRAIN-002"
    assert record.step == 4  # patience 5: the fifth consecutive step out of range
    assert record.decision.observed > 100


def test_a_crash_mid_run_still_writes_the_verdict(tmp_path: Path) -> None:
    def crash(control: Any) -> None:
        raise RuntimeError("disk on fire")

    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback, callbacks=(At(3, crash),))
    with pytest.raises(RuntimeError, match="disk on fire"):
        t.train()
    v = verdict(tmp_path / "run")
    assert v["crashed"] == "RuntimeError: disk on fire"
    assert v["last_step"] == 2 and not v["ok"]
    assert "the run crashed" in " ".join(check_run(tmp_path / "run").problems)


def test_a_keyboard_interrupt_is_recorded_as_an_interruption(tmp_path: Path) -> None:
    def interrupt(control: Any) -> None:
        raise KeyboardInterrupt

    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback, callbacks=(At(2, interrupt),))
    with pytest.raises(KeyboardInterrupt):
        t.train()
    v = verdict(tmp_path / "run")
    assert v["interrupted"] == "interrupted by KeyboardInterrupt at step 1"
    assert v["crashed"] is None and not v["ok"]


def test_resume_from_a_checkpoint_continues_the_tallies(tmp_path: Path) -> None:
    common: dict[str, Any] = {"eval_steps": 2, "save_strategy": "steps", "save_steps": 4}
    trainer(tmp_path / "out-a", gate(tmp_path / "a"), **common).train()

    def stop(control: Any) -> None:
        control.should_training_stop = True

    trainer(tmp_path / "out-b", gate(tmp_path / "b"), callbacks=(At(6, stop),), **common).train()
    ckpt = tmp_path / "out-b" / "checkpoint-4"
    assert (ckpt / STATE_FILE).is_file()
    resumed = gate(tmp_path / "b")
    trainer(tmp_path / "out-b", resumed, **common).train(resume_from_checkpoint=str(ckpt))
    assert resumed.validations == 4
    a, b = verdict(tmp_path / "a"), verdict(tmp_path / "b")
    counts = {i: (r["evaluations"], r["violations"]) for i, r in a["invariants"].items()}
    assert counts == {i: (r["evaluations"], r["violations"]) for i, r in b["invariants"].items()}
    assert counts["INV-TRAIN-005"] == (4, 0) and counts["INV-TRAIN-001"] == (8, 0)
    assert check_run(tmp_path / "b").ok


def test_the_callback_refuses_to_run_unattached(tmp_path: Path) -> None:
    callback = gate(tmp_path / "run")
    t = Trainer(
        model=model(),
        args=TrainingArguments(
            output_dir=str(tmp_path / "out"), max_steps=1, report_to=[], use_cpu=True
        ),
        train_dataset=Tokens(8, seed=1),
        callbacks=[callback],
    )
    with pytest.raises(RuntimeError, match="attach"):
        t.train()


def test_importing_traingate_does_not_import_transformers() -> None:
    probe = "import sys, traingate, traingate.integrations\nprint('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
