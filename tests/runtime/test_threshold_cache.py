"""A run's thresholds are resolved once: the regime and the run values do not change mid-run,
so a constant threshold is never re-evaluated or re-rendered per step, while a
regime-keyed one still resolves to its own regime's value in each run's context."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import traingate.checks.decision as decision_module
from traingate.checks import CheckContext
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import RegimeThreshold, Resolved, resolve
from traingate.runtime.guard import Guard

from .conftest import CLASSES, shipped_ids


def count_resolves(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every threshold the checks' contexts actually evaluate, in order."""
    seen: list[Any] = []

    def counting(threshold: Any, regime: Any, values: Any) -> Resolved:
        seen.append(threshold)
        return resolve(threshold, regime, values)

    monkeypatch.setattr(decision_module, "resolve", counting)
    return seen


def test_a_constant_threshold_is_resolved_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [i for i in shipped_ids(at="step") if i == "INV-TRAIN-002"]
    if not ids:
        pytest.skip("no shipped gradient_norm step invariant")
    seen = count_resolves(monkeypatch)
    guard = Guard(regime=FromScratch(CLASSES), only=ids)
    for step in range(30):
        guard.step(step, loss=torch.tensor(2.0), grad_norm=torch.tensor(0.5 + step / 100))
    (tracked,) = guard.tracked
    params = tracked.check.params
    assert tracked.evaluations == 30
    assert len(seen) == 2  # min_norm and max_norm, once each
    assert {id(t) for t in seen} == {id(params.min_norm), id(params.max_norm)}
    fresh = resolve(params.max_norm, guard.regime, {})
    assert tracked.last is not None and tracked.last["limit"] == fresh.value
    assert tracked.last["detail"] == "gradient norm 0.79 within [0.001, 100]"


def test_a_regime_keyed_threshold_resolves_per_regime(monkeypatch: pytest.MonkeyPatch) -> None:
    threshold = RegimeThreshold.model_validate(
        {"finetune": "10.0", "from_scratch": "2 * ln(vocab_size)"}
    )
    seen = count_resolves(monkeypatch)
    finetune, scratch = CheckContext(Finetune()), CheckContext(FromScratch(100))
    for _ in range(5):
        a, b = finetune.resolve(threshold), scratch.resolve(threshold)
        assert a.value == 10.0
        assert b.value == pytest.approx(2 * math.log(100))
        assert (a.formula, b.formula) == ("10.0", "2 * ln(vocab_size)")
        assert b == resolve(threshold, FromScratch(100), {})  # same value and evaluated form
    assert len(seen) == 2  # once in each regime's context
    other = CheckContext(FromScratch(1000)).resolve(threshold)
    assert other.value == pytest.approx(2 * math.log(1000))
    assert len(seen) == 3


def test_the_cache_is_per_threshold_object(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_resolves(monkeypatch)
    context = CheckContext(Finetune(), {"slack": 0.5})
    one = RegimeThreshold.model_validate({"finetune": "1 + slack", "from_scratch": "1"})
    two = RegimeThreshold.model_validate({"finetune": "2 + slack", "from_scratch": "2"})
    assert context.resolve(one).value == 1.5
    assert context.resolve(two).value == 2.5
    assert context.resolve(one).value == 1.5
    assert len(seen) == 2
