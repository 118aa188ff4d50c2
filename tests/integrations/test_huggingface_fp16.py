"""TraingateCallback's fp16 overflow path, with a real GradScaler and real fp16 overflows on CPU.

accelerate builds a ``GradScaler`` for fp16 only off the CPU (its fp16 branch requires a
non-CPU device), so ``fp16=True`` on CPU trains in fp32 with no scaler. These tests give the
Trainer's accelerator, before ``train()`` prepares the model and optimizer, what it would
have on a GPU: ``torch.amp.GradScaler("cpu")`` (what accelerate's ``get_grad_scaler`` makes
for the device) and native AMP, so ``prepare`` runs the forward under fp16 autocast (CPU
autocast supports float16), ``accelerator.backward`` scales the loss, the clipping unscales
the gradients, and the optimizer steps through ``scaler.step`` / ``scaler.update``.

The overflows are genuine: a loss scale of 2**40 overflows the fp16 activations' gradients
in backward (the logits' gradient alone is about 2**40 / 120 > 65504), while the loss stays
finite; the scaler finds the inf, skips the optimizer step and backs off its scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

import torch
from transformers import Trainer, TrainerCallback

from traingate import InvariantViolation
from traingate.ci.runcheck import check_run

from .test_huggingface import NanLossAt, gate, trainer, verdict

OVERFLOWING = 2.0**40  # a loss scale whose fp16 backward overflows on every step


def with_scaler(t: Trainer, scaler: torch.amp.GradScaler) -> Trainer:
    """Give ``t``'s accelerator the GradScaler and fp16 autocast it has on a GPU."""
    assert t.accelerator.mixed_precision == "fp16" and t.accelerator.scaler is None
    t.accelerator.scaler = scaler
    t.accelerator.native_amp = True
    return t


class Weights(TrainerCallback):
    """The weights before training (0) and after each optimizer step (1-based)."""

    def __init__(self) -> None:
        self.after: dict[int, dict[str, torch.Tensor]] = {}

    @staticmethod
    def copy(model: Any) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.after[0] = self.copy(kw["model"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.after[state.global_step] = self.copy(kw["model"])


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def step_metrics(callback: Any) -> list[dict[str, Any]]:
    """What each ``guard.step`` was given, from the Guard's metrics events."""
    seen: list[dict[str, Any]] = []
    callback.guard_kwargs["listeners"] = [
        lambda e: seen.append(dict(e.data)) if e.kind == "metrics" and "loss" in e.data else None
    ]
    return seen


def test_one_overflow_step_is_a_skip_and_the_run_passes(tmp_path: Path) -> None:
    weights = Weights()
    callback = gate(tmp_path / "run")
    seen = step_metrics(callback)
    # the first step overflows; the back-off takes the scale to 2**10, where nothing does
    scaler = torch.amp.GradScaler("cpu", init_scale=OVERFLOWING, backoff_factor=2.0**-30)
    t = with_scaler(trainer(tmp_path / "out", callback, fp16=True, callbacks=(weights,)), scaler)
    t.train()
    assert scaler.get_scale() == 2.0**10
    assert same(weights.after[1], weights.after[0])  # the scaler skipped the step
    assert not same(weights.after[2], weights.after[1])  # and applied the next
    assert seen[0]["overflow_skipped"] == 1.0 and "grad_norm" not in seen[0]
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in seen)
    assert all("overflow_skipped" not in s and s["grad_norm"] < 100 for s in seen[1:])
    assert callback.skips.count == 0  # reset by the first step that did not overflow
    v = verdict(tmp_path / "run")
    assert v["ok"] and v["aborted_by"] is None
    assert v["invariants"]["INV-TRAIN-001"]["evaluations"] == 8
    assert v["invariants"]["INV-TRAIN-001"]["violations"] == 0
    result = check_run(tmp_path / "run")
    assert result.ok, result


def test_more_overflows_in_a_row_than_allowed_abort_on_inv_train_001(tmp_path: Path) -> None:
    weights = Weights()
    callback = gate(tmp_path / "run", max_overflow_skips=3)
    seen = step_metrics(callback)
    # halving from 2**40 leaves the scale overflowing for ~20 steps: steps 0-2 are skips,
    # step 3 (the fourth overflow in a row) reaches the Guard whole
    scaler = torch.amp.GradScaler("cpu", init_scale=OVERFLOWING, backoff_factor=0.5)
    t = with_scaler(trainer(tmp_path / "out", callback, fp16=True, callbacks=(weights,)), scaler)
    with pytest.raises(InvariantViolation) as info:
        t.train()
    record = info.value.record
    assert (record.invariant_id, record.step) == ("INV-TRAIN-001", 3)
    assert "grad_norm" in record.decision.detail and "loss=" in record.decision.detail
    assert [s.get("overflow_skipped") for s in seen] == [1.0, 1.0, 1.0, None]
    assert torch.isfinite(torch.tensor(seen[3]["loss"])) and "grad_norm" in seen[3]
    assert scaler.get_scale() == OVERFLOWING / 2**3  # three skipped steps backed off
    params = {n: p.detach() for n, p in t.model.named_parameters()}
    assert same(params, weights.after[0])  # no step was ever applied
    v = verdict(tmp_path / "run")
    assert v["aborted_by"]["invariant"] == "INV-TRAIN-001" and v["last_step"] == 3
    assert not check_run(tmp_path / "run").ok


def test_a_nan_loss_under_a_scaler_is_a_violation_not_a_skip(tmp_path: Path) -> None:
    callback = gate(tmp_path / "run")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)  # nothing overflows
    t = with_scaler(trainer(tmp_path / "out", callback, cls=NanLossAt, fp16=True), scaler)
    t.nan_step = 2
    with pytest.raises(InvariantViolation) as info:
        t.train()
    assert (info.value.record.invariant_id, info.value.record.step) == ("INV-TRAIN-001", 2)
    assert callback.skips.count == 0


def test_a_disabled_scaler_skips_nothing_so_an_inf_gradient_is_a_violation(
    tmp_path: Path,
) -> None:
    callback = gate(tmp_path / "run")
    t = trainer(tmp_path / "out", callback)  # fp32: a finite loss, one inf gradient at step 2

    def blow_up(grad: torch.Tensor) -> torch.Tensor:
        return grad * float("inf") if t.state.global_step == 2 else grad

    next(t.model.parameters()).register_hook(blow_up)
    # a GradScaler(enabled=False) scales nothing and its scaler.step applies every step, so
    # an inf gradient would reach the weights: the callback must not record it as a skip
    t.accelerator.scaler = torch.amp.GradScaler("cpu", enabled=False)
    with pytest.raises(InvariantViolation) as info:
        t.train()
    assert (info.value.record.invariant_id, info.value.record.step) == ("INV-TRAIN-001", 2)
    assert "grad_norm" in info.value.record.decision.detail
    assert callback.skips.count == 0
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_the_overflows_are_fp16_ones(tmp_path: Path) -> None:
    # the same scaler without fp16 autocast (an fp32 forward) finds nothing to skip
    scaler = torch.amp.GradScaler("cpu", init_scale=OVERFLOWING, backoff_factor=0.5)
    t = trainer(tmp_path / "out", gate(tmp_path / "run"), fp16=True, max_steps=2, eval_steps=2)
    t.accelerator.scaler = scaler
    t.train()
    assert scaler.get_scale() == OVERFLOWING
