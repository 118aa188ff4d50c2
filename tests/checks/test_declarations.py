"""What each kind declares for its consumers: the observations it reads (the Guard's gate
and ``audit``) and how the report draws its limit."""

from __future__ import annotations

from typing import Any

import pytest

from traingate.checks.base import REGISTRY, Check, LimitDrawing

from .conftest import FINETUNE, build

LOSS_BALANCE_VAL = {"source": "val_components"}
OBSERVES: list[tuple[str, dict[str, Any], set[str], set[str]]] = [
    ("finite", {}, set(), {"loss", "grad_norm"}),
    ("finite", {"observations": ["val_loss"]}, set(), {"val_loss"}),
    ("expression", {"predicate": "a <= b", "metrics": ["a", "b"]}, {"a", "b"}, set()),
    ("loss_balance", {}, {"components"}, set()),
    ("loss_balance", LOSS_BALANCE_VAL, {"val_components"}, set()),
    ("gradient_norm", {}, {"grad_norm"}, set()),
    ("loss_spike", {}, {"loss"}, set()),
    ("initial_loss", {"num_classes": 2}, {"loss"}, set()),
    ("non_divergence", {"epoch_zero_cap": 10}, {"epoch", "val_loss"}, set()),
    (
        "confusion_rate",
        {"from_labels": [1], "to_labels": [0], "max_rate": 0.1},
        {"predictions", "labels"},
        set(),
    ),
    (
        "confusion_rate",
        {"from_labels": [1], "to_labels": [0], "max_rate": 0.1, "per_group": True},
        {"predictions", "labels", "groups"},
        set(),
    ),
]


def make(kind: str, params: dict[str, Any]) -> Check[Any]:
    return build(REGISTRY[kind], FINETUNE, **params)


@pytest.mark.parametrize(("kind", "params", "every", "any_of"), OBSERVES)
def test_observes_what_the_params_name(
    kind: str, params: dict[str, Any], every: set[str], any_of: set[str]
) -> None:
    check = make(kind, params)
    assert check.observes() == every
    assert check.observes_any() == any_of


def test_limit_drawings() -> None:
    drawn = {kind: cls.drawing for kind, cls in REGISTRY.items() if cls.drawing is not None}
    assert drawn == {
        "non_divergence": LimitDrawing("val_loss"),
        "loss_spike": LimitDrawing("loss", moving=True),
        "initial_loss": LimitDrawing("loss", constant=True, once=True, mirror="ln_num_classes"),
        "gradient_norm": LimitDrawing("grad_norm", constant=True),
        "loss_balance": LimitDrawing("component_shares", constant=True),
    }
    labels = {
        cls.limit_label(x)
        for kind, cls in REGISTRY.items()
        if kind != "non_divergence"
        for x in (0.0, 1.0)
    }
    assert labels == {"limit"}
