"""``guard.step(model=…)`` computes the gradient norm whenever a step invariant reads it:
one that needs it, one that takes it as one of several (``finite``), and one that demands it
(``metrics_present``, whose missing observation is itself a violation)."""

from __future__ import annotations

import pytest
import torch

from traingate import Finetune, Guard


@pytest.mark.parametrize("only", ["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-008"])
def test_the_norm_is_computed_for_every_invariant_that_reads_it(only: str) -> None:
    model = torch.nn.Linear(3, 1)
    model(torch.randn(4, 3)).sum().backward()
    expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    with Guard(regime=Finetune(), only=[only]) as guard:
        seen = guard.step(0, loss=torch.tensor(1.0), model=model)
    assert seen["grad_norm"] == pytest.approx(expected)
    record = guard.closed.invariants[only] if guard.closed else None
    assert record is not None and record.violations == 0


def test_no_reader_no_norm() -> None:
    model = torch.nn.Linear(3, 1)
    model(torch.randn(4, 3)).sum().backward()
    with Guard(regime=Finetune(), only=["INV-TRAIN-006"]) as guard:
        seen = guard.step(0, loss=torch.tensor(1.0), model=model, tokens_per_sec=1.0)
    assert "grad_norm" not in seen


def test_tensor_metrics_ride_in_the_steps_one_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokens/s tensor is moved with the loss and norm, not by its own ``.item()``."""
    items: list[str] = []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: items.append("item") or real_item(t))
    with Guard(regime=Finetune(), only=["INV-TRAIN-001", "INV-TRAIN-006"]) as guard:
        seen = guard.step(
            0,
            loss=torch.tensor(2.0),
            grad_norm=torch.tensor(0.5),
            components={"a": torch.tensor(1.5)},
            tokens_per_sec=torch.tensor(1234.5),
            lr=3e-4,
        )
    assert items == []  # one stacked tolist(), no per-value item()
    assert (seen["loss"], seen["grad_norm"], seen["tokens_per_sec"]) == (2.0, 0.5, 1234.5)
    assert seen["components"] == {"a": 1.5} and seen["lr"] == 3e-4
    assert guard.closed is not None
    assert guard.closed.invariants["INV-TRAIN-006"].last.observed == 1234.5  # type: ignore[union-attr]
