"""Fixtures for the Guard tests: temp contracts, a tiny classifier loop, shipped invariant ids.

Temp contracts only use kinds in ``traingate.checks.REGISTRY`` (``Guard`` loads files with
``load_valid``, which type-checks params by kind but does not resolve ``falsified_by``);
they still cite a real falsifier so ``contracts validate`` would accept them too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from traingate.checks import REGISTRY
from traingate.contract.shipped import shipped_contracts
from traingate.runtime.verdict import Verdict

FALSIFIER = "falsifiers/test_training_loop.py::test_non_finite_always_aborts"
CONTRACT_ID = "C-TEST-GUARD"
CONTRACT_VERSION = "0.3.1"
CONTRACT_REF = f"{CONTRACT_ID}@{CONTRACT_VERSION}"
FROM_SCRATCH_CAP = "2 * ln(vocab_size)"
CLASSES = 8  # the tiny classifier's "vocabulary": a cold start sits at ln 8 ≈ 2.08


def divergence(
    inv_id: str = "INV-TEST-005", *, on_violation: str = "abort", hint: str | None = None
) -> dict[str, Any]:
    """A ``non_divergence`` invariant with the shipped regime-keyed epoch-zero cap."""
    inv: dict[str, Any] = {
        "id": inv_id,
        "title": "Non-divergence",
        "check": "non_divergence",
        "at": "validation",
        "params": {
            "epoch_zero_cap": {"finetune": "10.0", "from_scratch": FROM_SCRATCH_CAP},
            "ratio_limit": 2.0,
        },
        "on_violation": on_violation,
        "falsified_by": [FALSIFIER],
    }
    if hint is not None:
        inv["hint"] = hint
    return inv


def finite_step(inv_id: str = "INV-TEST-001", *, on_violation: str = "abort") -> dict[str, Any]:
    """A ``finite`` invariant on the step's loss and gradient norm (needs the kind registered)."""
    return {
        "id": inv_id,
        "title": "Finite loss and gradients",
        "check": "finite",
        "at": "step",
        "params": {"observations": ["loss", "grad_norm"]},
        "on_violation": on_violation,
        "falsified_by": [FALSIFIER],
    }


def gate(gate_id: str, requires: Sequence[str], *, ship_blocking: bool = True) -> dict[str, Any]:
    return {
        "id": gate_id,
        "requires": list(requires),
        "ship_blocking": ship_blocking,
        "evidence": [FALSIFIER],
    }


def contract_text(
    invariants: Sequence[dict[str, Any]], gates: Sequence[dict[str, Any]] | None = None
) -> str:
    """YAML of a minimal valid contract holding ``invariants`` (each gated, blocking, unless
    ``gates`` says otherwise) with the ``vocab_size`` parameter declared as in the shipped one."""
    data = {
        "contract": CONTRACT_ID,
        "version": CONTRACT_VERSION,
        "title": "Guard test contract",
        "status": "active",
        "changelog": [{"version": CONTRACT_VERSION, "date": dt.date(2026, 4, 1), "change": "test"}],
        "parameters": {"vocab_size": {"type": "int", "min": 2}},
        "invariants": list(invariants),
        "gates": list(
            gates
            if gates is not None
            else [gate(f"GATE-TEST-{i:03d}", [inv["id"]]) for i, inv in enumerate(invariants, 1)]
        ),
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


WriteContract = Callable[..., Path]


@pytest.fixture
def write_contract(tmp_path: Path) -> WriteContract:
    """``write_contract(invariants, gates=None, name="c")`` → path of a temp contract file."""

    def write(
        invariants: Sequence[dict[str, Any]],
        gates: Sequence[dict[str, Any]] | None = None,
        name: str = "c",
    ) -> Path:
        folder = tmp_path / "contracts"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(contract_text(invariants, gates), encoding="utf-8")
        return path

    return write


def requires_kind(kind: str) -> pytest.MarkDecorator:
    """Skip until the lead registers ``kind`` in ``traingate.checks``."""
    return pytest.mark.skipif(
        kind not in REGISTRY, reason=f"check kind `{kind}` is not registered in traingate.checks"
    )


def shipped_ids(kind: str | None = None, at: str | None = None) -> list[str]:
    """Ids of shipped invariants, optionally of one kind and/or evaluation point."""
    return [
        inv.id
        for c in shipped_contracts()
        for inv in c.invariants
        if (kind is None or inv.check == kind) and (at is None or inv.at == at)
    ]


def shipped_finite_step() -> str | None:
    """The shipped invariant that checks step losses are finite, if there is one yet."""
    ids = shipped_ids("finite", "step")
    return ids[0] if ids else None


class Loop:
    """A plain classifier loop on random data: model, optimizer, batches, a validation set."""

    def __init__(self, seed: int = 0, classes: int = CLASSES, init_std: float | None = None):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, classes))
        if init_std is not None:  # a bad init: logits far from uniform, loss far above ln C
            nn.init.normal_(self.model[2].weight, std=init_std)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.x = torch.randn(64, 16, generator=gen)
        self.y = torch.randint(0, classes, (64,), generator=gen)
        self.val_x = torch.randn(32, 16, generator=gen)
        self.val_y = torch.randint(0, classes, (32,), generator=gen)

    def batches(self, n: int, size: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(n):
            j = (i * size) % len(self.x)
            yield self.x[j : j + size].clone(), self.y[j : j + size]

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        return loss.detach()

    @torch.no_grad()
    def val_loss(self) -> torch.Tensor:
        return nn.functional.cross_entropy(self.model(self.val_x), self.val_y)

    def snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model.parameters()]


@pytest.fixture
def loop() -> Loop:
    return Loop()


def cold_start_cap(classes: int = CLASSES) -> float:
    return 2.0 * math.log(classes)


def as_json(verdict: Verdict) -> str:
    """A verdict as ``verdict.json`` holds it (NaN-safe, so equal runs compare equal)."""
    return json.dumps(verdict.to_dict(), sort_keys=True)
