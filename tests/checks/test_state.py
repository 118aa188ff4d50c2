"""Every registered kind resumes exactly: state_dict → fresh check → load_state_dict.

One case per kind (a new kind without one fails ``test_every_kind_has_a_case``): params, a
stream of observations (one per Guard update-then-verdict), and the state a fresh check
saves, which is the shape checkpoints hold. Streams of the stateful kinds fire, so a resume
that lost a streak or a window would show.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pytest
import torch

from traingate.checks.base import REGISTRY, Check
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.evidence import jsonable

from .conftest import build, feed

Stream = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Case:
    """A kind's params, context, observation stream and the state of a fresh check."""

    params: Mapping[str, Any]
    stream: Stream
    fresh: Mapping[str, Any]
    context: CheckContext = field(default_factory=lambda: CheckContext(FromScratch(256)))


def strict_json(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state as the Guard checkpoints it: strict JSON, non-finite floats as strings."""
    return json.loads(json.dumps(jsonable(state), allow_nan=False))


def spike_losses() -> list[float]:
    rng = random.Random(7)
    return [rng.choice([1.0, 1.1, 0.9, 4.0, 40.0, math.nan]) for _ in range(200)]


def grad_norms() -> list[float]:
    rng = random.Random(4)
    return [rng.choice([1e-5, 1.0, 250.0, math.nan]) for _ in range(60)]


# Seed 004 validation loss components (type, pointer, span, countdown) and task weights.
SEED_004 = {"type": 1.08, "ptr": 0.025, "span": 0.57, "countdown": 16.12}
WEIGHTS = {"type": 0.137, "ptr": 0.561, "span": 0.260, "countdown": 0.043}
BALANCED = {"type": 0.7, "ptr": 0.4, "span": 0.3, "countdown": 0.5}
BALANCE_STREAM: list[dict[str, Any]] = [
    {"components": c, "weights": WEIGHTS}
    for c in [BALANCED, SEED_004, SEED_004, BALANCED, SEED_004, SEED_004]
]
BALANCE_STREAM.insert(3, {"loss": 1.0})  # no components: not an evaluation


def validation(epoch: int, collapsed: bool) -> dict[str, Any]:
    """One validation's tensors: 12 positions, 3 classes, 2 groups, 4-d embeddings."""
    g = torch.Generator().manual_seed(epoch)
    labels = torch.tensor([0, 1, 2, 1] * 3)
    predictions = torch.zeros_like(labels) if collapsed else labels.roll(epoch)
    probabilities = torch.softmax(torch.randn(12, 3, generator=g), dim=1)
    embeddings = torch.ones(12, 4) if collapsed else torch.randn(12, 4, generator=g)
    return {
        "epoch": epoch,
        "predictions": predictions,
        "labels": labels,
        "probabilities": probabilities,
        "embeddings": embeddings,
        "groups": torch.tensor([0, 1] * 6),
    }


VALIDATIONS = [validation(0, False), validation(1, True), validation(2, False)]
STATELESS: dict[str, dict[str, Any]] = {
    "distinct_predictions": {"min_distinct": 2},
    "macro_f1": {"min_f1": 0.5},
    "prediction_share": {"max_share": 0.5},
    "embedding_collapse": {"min_ratio": 0.5},
    "embedding_clusters": {"min_clusters": 2, "k": 3},
    "confusion_rate": {"from_labels": [1], "to_labels": [0], "max_rate": 0.5, "per_group": True},
    "wrong_confidence": {"max_confidence": 0.5},
    "confident_errors": {"max_share": 0.5, "confidence": 0.0},
    "ece": {"max_ece": 0.1},
    "probability_separation": {"min_separation": 0.05},
}

CASES: dict[str, Case] = {
    **{kind: Case(params, VALIDATIONS, {}) for kind, params in STATELESS.items()},
    "non_divergence": Case(
        {"epoch_zero_cap": "2 * ln(vocab_size)"},
        [{"epoch": e, "val_loss": v} for e, v in enumerate([5.5, 3.0, 2.5, 6.0, math.nan])],
        {"history": []},
    ),
    "loss_spike": Case(
        {"window": 8, "patience": 2},
        [{"loss": v} for v in spike_losses()],
        {"window": [], "sum": 0.0, "pushes": 0, "consecutive": 0, "last": None},
    ),
    "initial_loss": Case(
        {"num_classes": "vocab_size"},
        [{"loss": 1.0}, {"loss": 11.0}, {"loss": 9.0}, {"loss": 50.0}],
        {"initial_loss": None, "fresh": False},
    ),
    "gradient_norm": Case(
        {"patience": 3}, [{"grad_norm": v} for v in grad_norms()], {"streak": 0, "last": None}
    ),
    "loss_balance": Case(
        {"warmup": 1, "patience": 2},
        BALANCE_STREAM,
        {"evaluations": 0, "streak": 0, "last": None},
        CheckContext(Finetune()),
    ),
    "finite": Case(
        {},
        [{"loss": 1.0, "grad_norm": math.nan}, {"loss": 2.0}, {"step": 3}, {"loss": math.inf}],
        {"last": None},
    ),
    "expression": Case(
        {"predicate": "tokens_per_sec >= min_tps", "metrics": ["tokens_per_sec"]},
        [{"tokens_per_sec": 500.0}, {}, {"tokens_per_sec": -2.0}, {"tokens_per_sec": 100.0}],
        {"last": None},
        CheckContext(FromScratch(256), {"min_tps": 100.0}),
    ),
}


def placeholder_steps() -> list[dict[str, float]]:
    rng = random.Random(5)
    values = [1.0, 1.0, 1.0, 2.0, math.nan]
    steps = [{"loss": rng.choice(values), "grad_norm": rng.choice(values)} for _ in range(60)]
    return [{k: v for k, v in s.items() if rng.random() > 0.2} for s in steps]


CASES.update(
    {
        "no_placeholder": Case(
            {"window": 3, "fingerprint": {"loss": 1.0, "grad_norm": 1.0}},
            placeholder_steps(),
            {"streaks": [{}, 0, 0], "evaluated": False},
        ),
        "metrics_present": Case(
            {"observations": ["loss", "grad_norm"]},
            [{"loss": 1.0, "grad_norm": 2.0}, {"loss": 1.0}, {"loss": math.nan, "grad_norm": 1.0}],
            {"last": None},
        ),
    }
)

CASES["convergence"] = Case(
    {"patience": 2, "min_delta": 0.1},
    [{"epoch": e, "val_loss": v} for e, v in enumerate([3.0, 2.5, 2.45, math.nan, 2.0, 2.0, 2.0])],
    {"best": math.inf, "since_best": 0, "last": None},
)

SAME_STEPS = {"loss": [3.0, 2.9, 2.8, 2.7], "grad_norm": [1.0, 1.1, 1.2, 1.3]}
CASES["reproducible"] = Case(
    {"steps": 3},
    [
        {"run_steps": SAME_STEPS, "reference_steps": SAME_STEPS},
        {"run_steps": {**SAME_STEPS, "loss": [3.0, math.nan]}, "reference_steps": SAME_STEPS},
        {"run_steps": SAME_STEPS, "reference_steps": {"loss": [3.0, 2.9, 2.8]}},
    ],
    {"last": None},
)


def make(kind: str) -> Check[Any]:
    case = CASES[kind]
    return build(REGISTRY[kind], case.context, **case.params)


def verdicts(check: Check[Any], stream: Stream) -> list[str]:
    """The repr of each verdict, one update-then-verdict per observation."""
    return [repr(decision) for decision in feed(check, stream)]


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(REGISTRY)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_a_fresh_check_saves_its_declared_state(kind: str) -> None:
    check = make(kind)
    assert check.verdict() is None
    assert check.state_dict() == CASES[kind].fresh
    assert sorted(CASES[kind].fresh) == sorted(f.name for f in fields(REGISTRY[kind].state))


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_state_round_trip_at_every_cut(kind: str) -> None:
    stream = CASES[kind].stream
    expected = verdicts(make(kind), stream)
    assert any("ok=False" in d for d in expected)  # the stream does fire
    stateful = bool(fields(REGISTRY[kind].state))
    for cut in range(len(stream) + 1):
        first = make(kind)
        verdicts(first, stream[:cut])
        saved = strict_json(first.state_dict())
        resumed = make(kind)
        resumed.load_state_dict(saved)
        assert strict_json(resumed.state_dict()) == saved
        # a kind with state gives the saved verdict back; a tensor kind's buffer is empty
        last = expected[cut - 1] if cut and stateful else repr(None)
        assert repr(resumed.verdict()) == last
        assert verdicts(resumed, stream[cut:]) == expected[cut:]


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_reset_gives_fresh_state(kind: str) -> None:
    check = make(kind)
    expected = verdicts(make(kind), CASES[kind].stream)
    verdicts(check, CASES[kind].stream)
    check.reset()
    assert check.verdict() is None
    assert check.state_dict() == CASES[kind].fresh
    assert verdicts(check, CASES[kind].stream) == expected


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_loading_a_state_of_another_shape_is_an_error(kind: str) -> None:
    with pytest.raises(ValueError, match="state has keys"):
        make(kind).load_state_dict({**CASES[kind].fresh, "extra": 1})
    if CASES[kind].fresh:
        with pytest.raises(ValueError, match="state has keys"):
            make(kind).load_state_dict({})


def test_decisions_come_from_the_state_alone() -> None:
    """A loaded check's verdict is recomputed from the state, not copied from the saver."""
    check = make("gradient_norm")
    check.update({"grad_norm": 1e9})
    saved = check.state_dict()
    assert saved == {"streak": 1, "last": [1e9, 0]}
    saved["last"] = [1.0, 0]
    resumed = make("gradient_norm")
    resumed.load_state_dict(saved)
    decision = resumed.verdict()
    assert isinstance(decision, Decision) and decision.ok and decision.observed == 1.0
