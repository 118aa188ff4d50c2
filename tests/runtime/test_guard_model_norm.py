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
