"""Deferred steps: the finite flag decided on the device, a non-finite step skipped there by
the fused optimizer, and every step judged at the flush exactly as the eager Guard judges it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch

import traingate.runtime.guard as guard_module
from traingate.ci.derive import derive
from traingate.contract.regime import FromScratch
from traingate.runtime.deferred import DeferredSteps
from traingate.runtime.evidence import jsonable, read_evidence
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.verdict import load_verdict

from .conftest import CLASSES, Loop, as_json, finite_step, shipped_finite_step, shipped_ids
from .test_guard_syncs import Calls

STEP_IDS = shipped_ids(at="step")  # every shipped step invariant, as a real run has them


def fused_loop(seed: int = 0, make: Callable[..., Any] | None = None) -> Loop:
    """The tiny classifier loop with a fused optimizer (AdamW unless ``make`` says)."""
    loop = Loop(seed)
    params = loop.model.parameters()
    loop.opt = make(params) if make else torch.optim.AdamW(params, lr=1e-2, fused=True)
    return loop


def train_step(
    loop: Loop, x: torch.Tensor, y: torch.Tensor, *, poison: bool = False
) -> dict[str, Any]:
    """Forward and backward one batch (a NaN loss when ``poison``); the step's observations."""
    out = loop.model(x)
    ce = torch.nn.functional.cross_entropy(out, y)
    aux = 0.01 * out.pow(2).mean()
    loss = ce + aux
    if poison:
        loss = loss * torch.tensor(math.nan)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
    return {
        "loss": loss.detach(),
        "grad_norm": norm,
        "components": {"ce": ce.detach(), "aux": aux.detach()},
        "lr": 0.01,
        "tokens_per_sec": torch.tensor(1000.0),  # a device metric (INV-TRAIN-006 reads it)
    }


def optimizer_state(opt: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    """A copy of every parameter's optimizer state (moments, step counts)."""
    return [
        {k: v.detach().clone() for k, v in opt.state[p].items()}
        for group in opt.param_groups
        for p in group["params"]
    ]


def same_state(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def same_weights(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_nan_step_is_never_applied_and_the_flush_names_it(tmp_path: Path) -> None:
    loop = fused_loop()
    guard = Guard(regime=FromScratch(CLASSES), only=STEP_IDS, run_dir=tmp_path)
    steps = DeferredSteps(guard, loop.opt, sync_every=5)
    with pytest.raises(InvariantViolation) as raised:
        for step, (x, y) in enumerate(loop.batches(8)):
            observed = train_step(loop, x, y, poison=step == 2)
            steps.step(step, **observed)  # raises at step 4: the flush of steps 0–4
            weights, state = loop.snapshot(), optimizer_state(loop.opt)
            loop.opt.step()
            loop.opt.zero_grad()
            applied = not (same_weights(weights, loop.snapshot()))
            assert applied == (step != 2)
            if step == 2:  # the whole update skipped: weights, moments, step count
                assert same_state(state, optimizer_state(loop.opt))
    assert raised.value.step == 2
    assert raised.value.invariant_id == shipped_finite_step()
    assert "step 2's update was skipped on the device (never applied)" in str(
        raised.value.__notes__
    )
    assert steps.skipped == [2]
    assert steps.unjudged == [3, 4]
    assert guard.last_step == 2  # the Guard stopped where the eager one stops
    # AdamW counted steps 0, 1 and 3 (the flush raised before step 4's): not the skipped one
    assert all(int(s["step"]) == 3 for s in optimizer_state(loop.opt))
    verdict = guard.close(raised.value)
    assert verdict.aborted_by is not None and verdict.aborted_by.step == 2
    assert derive(tmp_path, load_verdict(tmp_path)).problems == []  # `contracts check` agrees


def with_and_without(skipped: int, n: int, make: Callable[..., Any] | None = None) -> DeferredSteps:
    """``n`` steps deferred with step ``skipped`` poisoned, and the same loop without that
    step at all: their weights and optimizer states must be equal."""
    deferred, plain = fused_loop(make=make), fused_loop(make=make)
    steps = DeferredSteps(Guard(only=[], contracts=None), deferred.opt, sync_every=100)
    for step, (x, y) in enumerate(list(deferred.batches(n))):
        steps.step(step, **train_step(deferred, x, y, poison=step == skipped))
        deferred.opt.step()
        deferred.opt.zero_grad()
        if step != skipped:
            train_step(plain, x, y)
            plain.opt.step()
            plain.opt.zero_grad()
    assert same_weights(deferred.snapshot(), plain.snapshot())
    assert same_state(optimizer_state(deferred.opt), optimizer_state(plain.opt))
    steps.close()
    assert steps.skipped == [skipped]
    return steps


def test_the_run_after_a_skipped_step_equals_a_run_that_never_had_it() -> None:
    with_and_without(skipped=1, n=4)


def run_loop(run_dir: Path, *, sync_every: int | None) -> tuple[Guard, list[torch.Tensor]]:
    """10 steps with a validation after step 4: eager (``None``) or deferred."""
    loop = fused_loop(seed=3)
    ids = [*STEP_IDS, *shipped_ids(at="validation")]
    with Guard(regime=FromScratch(CLASSES), run_dir=run_dir, only=ids, summary_every=4) as guard:
        steps = DeferredSteps(guard, loop.opt, sync_every=sync_every) if sync_every else None
        for step, (x, y) in enumerate(loop.batches(10)):
            observed = train_step(loop, x, y)
            if steps is None:
                guard.step(step, **observed)
            else:
                steps.step(step, **observed)
            loop.opt.step()
            loop.opt.zero_grad()
            if step == 4:
                (steps or guard).validation(0, val_loss=loop.val_loss())
        if steps is not None:
            steps.close()
    return guard, loop.snapshot()


def recorded(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """The evidence events (without times and chain hashes) and the metrics table."""
    events = [
        {k: v for k, v in e.items() if k not in ("time", "chain")}
        for e in read_evidence(run_dir / "evidence.jsonl")
    ]
    return events, pq.read_table(run_dir / "metrics.parquet").to_pydict()


@pytest.mark.parametrize("sync_every", [1, 3, 50])
def test_a_healthy_deferred_run_records_what_the_eager_run_records(
    tmp_path: Path, sync_every: int
) -> None:
    eager, eager_weights = run_loop(tmp_path / "eager", sync_every=None)
    deferred, deferred_weights = run_loop(tmp_path / "deferred", sync_every=sync_every)
    assert same_weights(eager_weights, deferred_weights)  # the skip path changes no update
    verdict = json.loads(as_json(deferred.closed))
    eager_verdict = json.loads(as_json(eager.closed))
    del verdict["evidence_head"], eager_verdict["evidence_head"]  # chained over event times
    assert verdict == eager_verdict
    every_step = {  # those fed by the device values: the loss, the norm, a device metric
        i: verdict["invariants"][i]["evaluations"]
        for kind in ("finite", "gradient_norm", "expression")
        for i in shipped_ids(kind, at="step")
    }
    assert len(every_step) >= 3 and set(every_step.values()) == {10}
    assert all(verdict["invariants"][i]["violations"] == 0 for i in STEP_IDS)
    assert recorded(tmp_path / "deferred") == recorded(tmp_path / "eager")


def test_sync_every_one_raises_before_the_optimizer_step_as_the_eager_guard_does() -> None:
    violations = []
    for deferred in (False, True):
        loop = fused_loop()
        guard = Guard(regime=FromScratch(CLASSES), only=STEP_IDS)
        steps = DeferredSteps(guard, loop.opt, sync_every=1) if deferred else None
        for step, (x, y) in enumerate(loop.batches(3)):
            observed = train_step(loop, x, y, poison=step == 2)
            weights = loop.snapshot()
            try:
                (steps or guard).step(step, **observed)
            except InvariantViolation as error:
                violations.append(json.dumps(jsonable(error.record.to_dict()), sort_keys=True))
                assert same_weights(weights, loop.snapshot())
                break
            loop.opt.step()
            loop.opt.zero_grad()
    assert len(violations) == 2
    assert violations[0] == violations[1]


def test_between_flushes_a_step_moves_nothing_to_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = fused_loop()
    guard = Guard(regime=FromScratch(CLASSES), only=STEP_IDS)
    steps = DeferredSteps(guard, loop.opt, sync_every=4)
    batches = list(loop.batches(8))
    # what a bare optimizer step itself moves, if anything (warmed up: its first step checks)
    train_step(loop, *batches[0])
    bare = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1, fused=True)
    bare.param_groups[0]["params"][0].grad = torch.ones(3)
    bare.step()
    to_host = []
    original = guard_module.to_host
    monkeypatch.setattr(guard_module, "to_host", lambda v: to_host.append(v) or original(v))
    calls = Calls(monkeypatch, "tolist", "item", "__float__", "__bool__", "cpu", "numpy")
    bare.step()
    baseline = dict(calls.counts)
    loop.opt.zero_grad()
    for step, (x, y) in enumerate(batches):
        observed = train_step(loop, x, y)
        calls.reset()
        steps.step(step, **observed)
        in_step = dict(calls.counts)
        calls.reset()
        loop.opt.step()
        loop.opt.zero_grad()
        assert calls.counts == baseline  # the hooks added nothing to the optimizer step
        flushed = step % 4 == 3
        assert in_step == {**dict.fromkeys(in_step, 0), "tolist": int(flushed)}
        assert steps.pending == (0 if flushed else step % 4 + 1)
    # the Guard saw host floats only: its own transfer never touched a tensor
    assert len(to_host) == 8
    assert all(isinstance(v, float) for values in to_host for v in values)
    assert guard.judge().invariants[shipped_finite_step()].evaluations == 8


def test_a_non_finite_step_is_skipped_even_when_no_finite_invariant_is_enforced(
    tmp_path: Path,
) -> None:
    loop = fused_loop()
    norm_only = [i for i in STEP_IDS if i != shipped_finite_step()]
    guard = Guard(regime=FromScratch(CLASSES), only=norm_only, run_dir=tmp_path)
    with guard, DeferredSteps(guard, loop.opt, sync_every=2) as steps:
        for step, (x, y) in enumerate(loop.batches(4)):
            steps.step(step, **train_step(loop, x, y, poison=step == 1))
            weights = loop.snapshot()
            loop.opt.step()
            loop.opt.zero_grad()
            assert same_weights(weights, loop.snapshot()) == (step == 1)
    assert steps.skipped == [1]
    events = [e for e in read_evidence(tmp_path / "evidence.jsonl") if e["event"] == "step_skipped"]
    assert [(e["step"], e["on"]) for e in events] == [(1, "device")]
    assert derive(tmp_path, load_verdict(tmp_path)).problems == []  # the event breaks nothing


@pytest.mark.parametrize(
    ("loss", "norm", "skipped"),
    [
        (1.0, 2.0, False),
        (3e38, -3e38, False),  # finite however large: x·0 stays 0
        (-0.0, 0.0, False),
        (math.nan, 2.0, True),
        (1.0, math.inf, True),
        (-math.inf, 2.0, True),
    ],
)
@pytest.mark.parametrize("on_device", [True, False])
def test_the_flag_is_set_exactly_when_a_checked_value_is_not_finite(
    loss: float, norm: float, skipped: bool, on_device: bool
) -> None:
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([param], lr=0.1, fused=True)
    steps = DeferredSteps(Guard(only=[], contracts=None), opt, sync_every=10)
    param.grad = torch.ones(2)
    wrap = torch.tensor if on_device else float
    steps.step(0, loss=wrap(loss), grad_norm=wrap(norm))
    opt.step()
    assert torch.equal(param.detach(), torch.ones(2)) == skipped
    steps.flush()
    assert steps.skipped == ([0] if skipped else [])


def test_a_scalar_a_finite_invariant_names_is_checked_on_the_device_too(
    write_contract: Callable[..., Path],
) -> None:
    own = {**finite_step(), "params": {"observations": ["loss", "aux"]}}
    guard = Guard([write_contract([own])])
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([param], lr=0.1, fused=True)
    steps = DeferredSteps(guard, opt, sync_every=10)
    assert steps.checked == {"loss", "grad_norm", "aux"}
    for step, aux in enumerate([0.5, math.nan, 0.5]):
        param.grad = torch.ones(2)
        steps.step(
            step, loss=torch.tensor(1.0), aux=torch.tensor(aux), other=torch.tensor(math.nan)
        )
        opt.step()
    with pytest.raises(InvariantViolation, match="non-finite aux"):
        steps.flush()
    assert steps.skipped == [1]  # ``other`` is no checked scalar: steps 0 and 2 were applied
    assert steps.unjudged == [2]


@pytest.mark.parametrize("sync_every", [0, -1, 1.5, True])
def test_sync_every_must_be_a_whole_number(sync_every: Any) -> None:
    loop = fused_loop()
    with pytest.raises(ValueError, match="sync_every must be a whole number"):
        DeferredSteps(Guard(only=[], contracts=None), loop.opt, sync_every=sync_every)


def test_the_module_imports_without_torch() -> None:
    code = "import sys, traingate.runtime.deferred; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_leaving_the_block_on_a_crash_hands_the_buffered_steps_to_the_guard() -> None:
    loop = fused_loop()
    guard = Guard(regime=FromScratch(CLASSES), only=STEP_IDS)
    with pytest.raises(KeyError), DeferredSteps(guard, loop.opt, sync_every=50) as steps:
        for step, (x, y) in enumerate(loop.batches(3)):
            steps.step(step, **train_step(loop, x, y))
            loop.opt.step()
            loop.opt.zero_grad()
        raise KeyError("the loop crashed")
    assert steps.pending == 0 and guard.last_step == 2
    assert guard.judge().invariants[shipped_finite_step()].evaluations == 3
    loop.opt.step()  # unhooked


@pytest.mark.parametrize("needs_norm", [True, False])
def test_a_model_yields_the_norm_for_the_flag_and_for_the_guard_only_if_it_needs_one(
    needs_norm: bool,
) -> None:
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([param], lr=0.1, fused=True)
    guard = Guard(only=[i for i in STEP_IDS if needs_norm or i == shipped_ids("initial_loss")[0]])
    steps = DeferredSteps(guard, opt, sync_every=10)
    model = torch.nn.Module()
    model.register_parameter("w", param)
    for step, grad in enumerate([1.0, math.nan]):  # a NaN gradient under a finite loss
        param.grad = torch.full((2,), grad)
        steps.step(step, loss=torch.tensor(1.0), model=model)
        opt.step()
    assert not torch.equal(param.detach(), torch.ones(2))  # step 0 applied
    if needs_norm:
        with pytest.raises(InvariantViolation, match="non-finite grad_norm"):
            steps.flush()
    else:
        assert ["grad_norm" in obs for obs in steps.flush()] == [False, False]
    assert steps.skipped == [1]


def test_a_stop_invariant_sets_should_stop_at_the_flush(
    write_contract: Callable[..., Path],
) -> None:
    guard = Guard([write_contract([finite_step(on_violation="stop")])])
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([param], lr=0.1, fused=True)
    steps = DeferredSteps(guard, opt, sync_every=3)
    seen = []
    for step, loss in enumerate([1.0, math.nan, 1.0]):
        param.grad = torch.ones(2)
        steps.step(step, loss=torch.tensor(loss))
        seen.append(steps.should_stop)
        opt.step()
    assert seen == [False, False, True]  # decided at the flush after step 2, never raised
    assert guard.early_stop is not None and steps.skipped == [1]


def test_a_checkpoint_holds_every_step_before_it() -> None:
    loop = fused_loop()
    guard = Guard(regime=FromScratch(CLASSES), only=STEP_IDS)
    steps = DeferredSteps(guard, loop.opt, sync_every=50)
    for step, (x, y) in enumerate(loop.batches(3)):
        steps.step(step, **train_step(loop, x, y))
        loop.opt.step()
        loop.opt.zero_grad()
    assert steps.pending == 3
    state = steps.state_dict()
    assert steps.pending == 0 and state["last_step"] == 2
    assert state["tallies"][shipped_finite_step()]["evaluations"] == 3
