"""Deferred steps and the optimizers: which ones can skip a step on the device (and how a
skipped first step leaves each as new), which are refused, GradScaler, several optimizers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from traingate.runtime.deferred import DeferredSteps, UnseenStep, UnsupportedOptimizer
from traingate.runtime.guard import Guard

from .test_deferred import fused_loop, same_weights, train_step, with_and_without


def sgd_momentum(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, fused=True)


@pytest.mark.parametrize(
    "make",
    [
        sgd_momentum,
        lambda p: torch.optim.SGD(p, lr=0.1, fused=True),
        lambda p: torch.optim.Adam(p, lr=1e-2, fused=True),
        lambda p: torch.optim.Adagrad(p, lr=1e-2, fused=True),
    ],
    ids=["sgd-momentum", "sgd", "adam", "adagrad"],
)
def test_every_supported_optimizer_skips_a_first_step_and_then_steps_as_new(
    make: Callable[..., Any],
) -> None:
    """A skipped FIRST step is the hard case: fused SGD alone would leave its momentum
    buffer uninitialised (the Guard pre-fills it with zeros, exactly torch's first step)."""
    with_and_without(skipped=0, n=3, make=make)


class OwnAdamW(torch.optim.AdamW):
    """A subclass may step differently: it is refused too."""


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: torch.optim.AdamW(p, lr=0.1), "param group 0 is not fused"),
        (lambda p: torch.optim.Adam(p, lr=0.1, foreach=True), "param group 0 is not fused"),
        (lambda p: torch.optim.SGD(p, lr=0.1), "param group 0 is not fused"),
        (lambda p: torch.optim.RMSprop(p, lr=0.1), "cannot skip a step on the device"),
        (lambda p: OwnAdamW(p, lr=0.1, fused=True), "cannot skip a step on the device"),
        (
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, fused=True),
            "dampening=0.1",
        ),
    ],
    ids=["adamw", "adam-foreach", "sgd", "rmsprop", "subclass", "sgd-dampening"],
)
def test_an_optimizer_that_cannot_skip_on_the_device_is_refused(
    make: Callable[..., Any], says: str
) -> None:
    loop = fused_loop(make=make)
    with pytest.raises(UnsupportedOptimizer, match=says):
        DeferredSteps(Guard(only=[], contracts=None), loop.opt)


def test_a_group_added_later_unfused_is_refused_at_its_first_step() -> None:
    loop = fused_loop()
    steps = DeferredSteps(Guard(only=[], contracts=None), loop.opt)
    extra = torch.nn.Parameter(torch.ones(2))
    loop.opt.add_param_group({"params": [extra], "fused": False})
    x, y = next(loop.batches(1))
    steps.step(0, **train_step(loop, x, y))
    before = loop.snapshot()
    with pytest.raises(UnsupportedOptimizer, match="param group 1 is not fused"):
        loop.opt.step()
    assert same_weights(before, loop.snapshot())


def test_an_optimizer_step_the_guard_never_saw_is_refused() -> None:
    loop = fused_loop()
    steps = DeferredSteps(Guard(only=[], contracts=None), loop.opt)
    x, y = next(loop.batches(1))
    train_step(loop, x, y)
    with pytest.raises(UnseenStep, match=r"without steps\.step"):
        loop.opt.step()
    steps.step(0, **train_step(loop, x, y))
    loop.opt.step()  # seen: it steps
    with pytest.raises(UnseenStep, match=r"without steps\.step"):
        loop.opt.step()  # its flag was spent by the step before
    steps.close()
    loop.opt.step()  # unhooked: the optimizer is the user's again


def test_a_grad_scaler_step_is_skipped_when_either_flag_is_set() -> None:
    loop = fused_loop()
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    steps = DeferredSteps(Guard(only=[], contracts=None), loop.opt, sync_every=100)
    for step, (x, y) in enumerate(loop.batches(4)):
        loss = torch.nn.functional.cross_entropy(loop.model(x), y)
        scaler.scale(loss).backward()
        if step == 1:  # a non-finite loss the scaler never sees: the gradients are finite
            loss = loss * math.inf
        if step == 2:  # an inf gradient only the scaler sees: no grad_norm handed to steps
            next(loop.model.parameters()).grad[0, 0] = math.inf
        steps.step(step, loss=loss.detach())
        weights = loop.snapshot()
        scaler.step(loop.opt)
        scaler.update()
        loop.opt.zero_grad()
        assert same_weights(weights, loop.snapshot()) == (step in (1, 2))
        assert not hasattr(loop.opt, "found_inf")  # both flags were put back and removed
    assert steps.flush() and steps.skipped == [1]  # the Guard's own skips only


def test_every_optimizer_of_the_loop_skips_the_step() -> None:
    params = [torch.nn.Parameter(torch.ones(2)) for _ in range(2)]
    opts = [torch.optim.AdamW([p], lr=0.1, fused=True) for p in params]
    steps = DeferredSteps(Guard(only=[], contracts=None), opts, sync_every=10)
    for step, loss in enumerate([1.0, math.nan]):
        for p in params:
            p.grad = torch.ones(2)
        steps.step(step, loss=torch.tensor(loss))
        before = [p.detach().clone() for p in params]
        for opt in opts:
            opt.step()
        assert [torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True)] == [
            step == 1
        ] * 2
