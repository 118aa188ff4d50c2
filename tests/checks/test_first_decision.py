"""Every registered kind declares truly when it first decides (``Check.first_decision``).

Fed exactly the declared count of healthy observations, a check's verdict is ``None`` after
each but the last and a decision after the last: the planner's "this run is too short"
(:mod:`traingate.runtime.planning`) is only as honest as these counts. Params and contexts
are :mod:`test_state`'s per-kind cases, each also with the params that raise the count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch

from traingate.checks.base import REGISTRY, Check, own_params
from traingate.checks.liveness import TensorCheck
from traingate.checks.loss_spike import LossSpikeParams

from .conftest import build, feed
from .test_state import BALANCED, CASES, WEIGHTS, validation

Healthy = Callable[[int], Mapping[str, Any]]

ONES = {"loss": [1.0] * 3, "grad_norm": [1.0] * 3}  # three identical steps, run and reference
# The i-th (0-based) healthy observation of each kind that is not a validation-tensor kind.
HEALTHY: dict[str, Healthy] = {
    "finite": lambda i: {"step": i, "loss": 1.0, "grad_norm": 1.0},
    "gradient_norm": lambda i: {"step": i, "grad_norm": 1.0},
    "loss_spike": lambda i: {"step": i, "loss": 1.0},
    "initial_loss": lambda i: {"step": i, "loss": math.log(256)},
    "expression": lambda i: {"step": i, "tokens_per_sec": 500.0},
    "loss_balance": lambda i: {"step": i, "components": BALANCED, "weights": WEIGHTS},
    "non_divergence": lambda i: {"step": i, "epoch": i, "val_loss": 3.0},
    "convergence": lambda i: {"step": i, "epoch": i, "val_loss": 3.0 - i / 8},
    "no_placeholder": lambda i: {"step": i, "loss": 3.0 - i / 8, "grad_norm": 1.0 + i / 8},
    "metrics_present": lambda i: {"step": i, "loss": 2.0, "grad_norm": 1.0},
    "reproducible": lambda i: {"step": i, "run_steps": ONES, "reference_steps": ONES},
}

# Params that make a kind need more than its test_state case does.
RAISED: dict[str, dict[str, Any]] = {
    "loss_spike": {"window": 12},
    "loss_balance": {"warmup": 3},
    "no_placeholder": {"window": 6},
}


def tensor_kind(kind: str) -> bool:
    return issubclass(REGISTRY[kind], TensorCheck)


def healthy_validation(i: int) -> dict[str, Any]:
    """Validation ``i``: every prediction right, with confidence 1 (so calibrated too)."""
    tensors = validation(0, collapsed=False)
    sure = torch.nn.functional.one_hot(tensors["predictions"], num_classes=3).float()
    return {**tensors, "probabilities": sure, "epoch": i, "step": i}


def healthy(kind: str) -> Healthy:
    """The kind's i-th healthy observation (a validation of epoch i for the tensor kinds)."""
    return healthy_validation if tensor_kind(kind) else HEALTHY[kind]


def raised(kind: str) -> dict[str, Any]:
    return {"from_epoch": 2} if tensor_kind(kind) else RAISED.get(kind, {})


def make(kind: str, extra: Mapping[str, Any]) -> Check[Any]:
    case = CASES[kind]
    return build(REGISTRY[kind], case.context, **{**case.params, **extra})


VARIANTS = [
    pytest.param(kind, variant, id=f"{kind}-{variant}")
    for kind in sorted(REGISTRY)
    for variant in ("case", "raised")
]


@pytest.mark.parametrize(("kind", "variant"), VARIANTS)
def test_the_declared_count_is_when_it_first_decides(kind: str, variant: str) -> None:
    check = make(kind, raised(kind) if variant == "raised" else {})
    needed = type(check).first_decision(check.params)
    assert needed >= 1
    verdicts = feed(check, [healthy(kind)(i) for i in range(needed)])
    assert verdicts[:-1] == [None] * (needed - 1)
    first = verdicts[-1]
    assert first is not None and first.ok, first


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_the_raised_params_raise_the_count_where_a_kind_has_them(kind: str) -> None:
    case, more = make(kind, {}), make(kind, raised(kind))
    before = type(case).first_decision(case.params)
    after = type(more).first_decision(more.params)
    assert after > before if raised(kind) else after == before == 1


@pytest.mark.parametrize(
    ("kind", "params", "needed"),
    [
        ("loss_spike", {}, 101),  # a full window of 100 losses, then the step judged on them
        ("loss_spike", {"window": 1}, 2),
        ("loss_balance", {}, 1),
        ("loss_balance", {"warmup": 100}, 101),
        ("non_divergence", {"epoch_zero_cap": 10.0}, 1),  # epoch 0 is judged by its cap
        ("initial_loss", {"num_classes": 8}, 1),
        ("gradient_norm", {"patience": 5}, 1),  # patience delays failing, not deciding
        ("no_placeholder", {}, 5),  # no shorter run can repeat a value 5 times
        ("metrics_present", {"observations": ["loss"]}, 1),
        ("macro_f1", {"min_f1": 0.1, "from_epoch": 10}, 11),
        ("confusion_rate", {"from_labels": [1], "to_labels": [0], "max_rate": 0.1}, 1),
    ],
)
def test_what_kinds_declare(kind: str, params: dict[str, Any], needed: int) -> None:
    cls = REGISTRY[kind]
    assert cls.first_decision(cls.params_model.model_validate(params)) == needed


@pytest.mark.parametrize("kind", sorted(k for k in REGISTRY if tensor_kind(k)))
def test_validations_before_from_step_are_not_decisions(kind: str) -> None:
    check = make(kind, {"from_step": 50})
    assert type(check).first_step(check.params) == 50
    observation = healthy(kind)(0)
    assert feed(check, [{**observation, "step": 49}]) == [None]
    decision = feed(check, [{**observation, "step": 50}])[0]
    assert decision is not None and decision.ok


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_no_kind_waits_for_a_step_unless_its_params_say_so(kind: str) -> None:
    check = make(kind, {})
    assert type(check).first_step(check.params) == 0


def test_another_kinds_params_are_a_type_error() -> None:
    spike = REGISTRY["loss_spike"]
    balance = REGISTRY["loss_balance"].params_model.model_validate({})
    with pytest.raises(TypeError, match="expected LossSpikeParams, got LossBalanceParams"):
        spike.first_decision(balance)
    assert own_params(LossSpikeParams(), LossSpikeParams) == LossSpikeParams()
