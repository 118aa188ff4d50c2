"""The Guard's cost in a loop: one host transfer per step; non-finite values are stopped
before optimizer.step()."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import traingate.runtime.guard as guard_module
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.verdict import load_verdict

from .conftest import (
    CLASSES,
    Loop,
    WriteContract,
    finite_step,
    requires_kind,
    shipped_finite_step,
    shipped_ids,
)


class Calls:
    """Counts calls to torch.Tensor methods patched to go through it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
        self.counts = dict.fromkeys(names, 0)
        for name in names:
            original = getattr(torch.Tensor, name)

            def spy(tensor: torch.Tensor, *a: Any, _n: str = name, _f: Any = original) -> Any:
                self.counts[_n] += 1
                return _f(tensor, *a)

            monkeypatch.setattr(torch.Tensor, name, spy)

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)


def test_each_step_moves_its_scalars_to_the_host_in_one_transfer(
    monkeypatch: pytest.MonkeyPatch, loop: Loop
) -> None:
    ids = shipped_ids(at="step")  # every shipped step-level invariant, as a real run has them
    guard = Guard(regime=FromScratch(CLASSES), only=ids)
    to_host = []
    original_to_host = guard_module.to_host
    monkeypatch.setattr(
        guard_module, "to_host", lambda values: to_host.append(1) or original_to_host(values)
    )
    calls = Calls(monkeypatch, "tolist", "item", "__float__", "cpu")
    seen = []
    for step, (x, y) in enumerate(loop.batches(4)):
        out = loop.model(x)
        ce = torch.nn.functional.cross_entropy(out, y)
        aux = 0.01 * out.pow(2).mean()
        loss = ce + aux
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
        calls.reset()
        host = guard.step(
            step,
            loss=loss.detach(),
            grad_norm=grad_norm,
            components={"ce": ce.detach(), "aux": aux.detach()},
            lr=0.1,
        )
        assert calls.counts == {"tolist": 1, "item": 0, "__float__": 0, "cpu": 0}
        assert isinstance(host["loss"], float)
        assert len(to_host) == step + 1
        loop.opt.step()
        loop.opt.zero_grad()
        seen.append((loss.detach(), grad_norm, ce.detach(), aux.detach()))
    assert guard.judge().invariants[shipped_finite_step()].evaluations == 4

    monkeypatch.undo()
    got = {
        (m, n): v
        for m, n, v in zip(guard.metrics.step, guard.metrics.name, guard.metrics.value, strict=True)
    }
    for step, (loss, grad_norm, ce, aux) in enumerate(seen):
        assert got[(step, "loss")] == pytest.approx(float(loss))
        assert got[(step, "grad_norm")] == pytest.approx(float(grad_norm))
        assert got[(step, "component/ce")] == pytest.approx(float(ce))
        assert got[(step, "component/aux")] == pytest.approx(float(aux))
        assert got[(step, "lr")] == 0.1


# -- non-finite steps never reach the optimizer ---------------------------------------------------


def _finite_guard(write_contract: WriteContract) -> tuple[Guard, str]:
    shipped = shipped_finite_step()
    if shipped is not None:
        return Guard(regime=FromScratch(CLASSES), only=[shipped]), shipped
    path = write_contract([finite_step()])
    return Guard([path], regime=FromScratch(CLASSES)), "INV-TEST-001"


@requires_kind("finite")
@pytest.mark.parametrize("poison", ["nan_input", "inf_gradient"])
def test_non_finite_step_raises_before_optimizer_step(
    write_contract: WriteContract, loop: Loop, poison: str
) -> None:
    guard, inv_id = _finite_guard(write_contract)
    bad_step = 3
    before: list[torch.Tensor] = []
    with pytest.raises(InvariantViolation) as caught, guard:
        for step, (x, y) in enumerate(loop.batches(6)):
            if step == bad_step and poison == "nan_input":
                x[0, 0] = float("nan")
            loss = loop.forward_backward(x, y)
            if step == bad_step and poison == "inf_gradient":
                loop.model[0].weight.grad[0, 0] = float("inf")
            before = loop.snapshot()
            grad_norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
            guard.step(step, loss=loss, grad_norm=grad_norm)
            loop.opt.step()
            loop.opt.zero_grad()

    err = caught.value
    assert err.invariant_id == inv_id
    assert err.step == bad_step
    assert not math.isfinite(err.observed)
    after = loop.snapshot()
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)
    assert guard.judge().invariants[inv_id].status == "fail"


def test_params_dependent_observation_missing_reads_not_evaluated(tmp_path: Path) -> None:
    """A per-locale confusion tripwire without group ids is not evaluated, not a crash."""
    import torch

    from traingate.contract.shipped import shipped_contracts_dir

    contract = shipped_contracts_dir() / "confusion-v1.yaml"
    with Guard([contract], regime=Finetune(), run_dir=tmp_path / "run") as guard:
        labels = torch.tensor([1, 2, 0, 0, 6])
        guard.validation(0, step=30_000, predictions=labels.clone(), labels=labels)
    verdict = load_verdict(tmp_path / "run")
    statuses = {k: v.status for k, v in verdict.invariants.items()}
    assert statuses and set(statuses.values()) == {"not_evaluated"}
    assert verdict.ok is False
    with Guard([contract], regime=Finetune()) as guard:
        guard.validation(
            0,
            step=30_000,
            predictions=labels.clone(),
            labels=labels,
            groups=torch.zeros(5, dtype=torch.long),
        )
        assert {v.status for v in guard.judge().invariants.values()} == {"pass"}
