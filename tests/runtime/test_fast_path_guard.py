"""A Guard on its fast path records exactly what it records deciding every step in full.

The same run (tolerated spikes and out-of-range gradient norms, dominated components, a
warning) goes through two Guards: one as shipped, where a passing step is recorded without
its decision being built, and one whose checks have no fast path (``Check.observe`` is the
base class's: ``update``, then the full decision). Verdicts (every worst and last
evaluation), checkpoint state and the metrics rows must be identical.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from traingate.checks import REGISTRY, Check
from traingate.contract.regime import FromScratch
from traingate.runtime.guard import Guard

REGIME = FromScratch(100)
STEP_IDS = [
    "INV-BAL-002",
    *(f"INV-TRAIN-00{i}" for i in (1, 2, 3, 4, 6, 7, 8)),
]


def observations(step: int) -> dict[str, Any]:
    """A healthy run with rough patches: spikes, a norm out of range for 3 steps, dominated
    components for a while, a negative throughput once (a warning)."""
    loss = 4.6 - step / 200 + 0.001 * (step % 7)
    if step in (150, 151, 220):
        loss *= 3  # a spike, tolerated (patience 4)
    norm = 0.5 + 0.01 * (step % 5)
    if 180 <= step < 183:
        norm = 500.0  # exploding for 3 steps (fires at 5)
    a = 2.3 + 0.001 * step
    b = 0.1 if 200 <= step < 230 else 2.3  # a dominates, for fewer than 100 steps
    return {
        "loss": loss,
        "grad_norm": norm,
        "components": {"a": a, "b": b},
        "lr": 1e-3,
        "tokens_per_sec": -1.0 if step == 90 else 1000.0 + step,
    }


def run() -> tuple[dict[str, Any], dict[str, Any], list[list[Any]]]:
    guard = Guard(regime=REGIME, only=STEP_IDS, summary_every=50)
    for step in range(260):
        guard.step(step, **observations(step))
    state = guard.state_dict()
    verdict = json.loads(json.dumps(guard.judge().model_dump(mode="json"), default=str))
    m = guard.metrics
    return verdict, state, [m.point, m.step, m.epoch, m.name, m.value]


def test_the_fast_path_records_what_the_full_decisions_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = run()
    for cls in REGISTRY.values():
        if "observe" in vars(cls):
            monkeypatch.setattr(cls, "observe", Check.observe)
    full = run()
    assert repr(fast) == repr(full)
    verdict = fast[0]["invariants"]
    assert verdict["INV-TRAIN-006"]["violations"] == 1  # the warning: a full decision
    assert all(verdict[i]["evaluations"] > 0 for i in STEP_IDS)
    assert verdict["INV-TRAIN-002"]["worst"]["observed"] == 500.0  # a pass, out of range
    assert math.isclose(verdict["INV-BAL-002"]["worst"]["observed"], 2.5 / 2.6, rel_tol=0.01)
