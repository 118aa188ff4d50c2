"""The Guard's per-step fast path (``Check.observe``) against the kind's own decision.

For random runs of observations (repeats, NaN, inf, absent values, spikes, dominated
components), one check folds each step with ``update``/``verdict`` (the pure decision, the
code the falsifiers test) and a twin folds it with ``observe``. At every step the twins hold
the same state, give the same verdict, and a fast pass is exactly the passing decision:
same observed value, limit and comparison, and ``decide_on(inputs)`` rebuilds it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.checks import REGISTRY, CheckContext
from traingate.checks.base import Check
from traingate.contract.regime import FromScratch

CONTEXT = CheckContext(FromScratch(100), {"vocab_size": 100.0})

KINDS: list[tuple[str, dict[str, Any]]] = [
    ("finite", {"observations": ["loss", "grad_norm"]}),
    ("gradient_norm", {"min_norm": 0.01, "max_norm": 10.0, "patience": 2}),
    ("gradient_norm", {"min_norm": 1.0, "max_norm": 1.05, "patience": 1}),
    ("loss_spike", {"spike_factor": 1.5, "window": 3, "patience": 1}),
    ("loss_spike", {"spike_factor": 2.0, "window": 2, "patience": 0}),
    ("loss_balance", {"max_share": 0.6, "warmup": 2, "patience": 2}),
    ("loss_balance", {"max_share": 0.9, "warmup": 0, "patience": 1}),
    ("expression", {"predicate": "tokens_per_sec >= 0", "metrics": ["tokens_per_sec"]}),
    ("expression", {"predicate": "tokens_per_sec / lr > 1", "metrics": ["tokens_per_sec", "lr"]}),
    ("no_placeholder", {"observations": ["loss", "grad_norm"], "window": 2}),
    ("no_placeholder", {"observations": ["loss"], "window": 3, "fingerprint": {"loss": 1.0}}),
    ("metrics_present", {"observations": ["loss", "grad_norm", "lr"]}),
]

values = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 1e-4, 50.0, -1.0, math.nan, math.inf]),
    st.floats(-5, 5, allow_nan=False),
)
maybe = st.one_of(st.none(), values)
components = st.one_of(
    st.none(), st.fixed_dictionaries({"a": values, "b": st.sampled_from([1.0, 0.1, 0.0])})
)
steps = st.fixed_dictionaries(
    {"loss": maybe, "grad_norm": maybe, "lr": maybe, "tokens_per_sec": maybe},
    optional={"components": components},
)


def observation(raw: dict[str, Any], step: int) -> dict[str, Any]:
    """A step observation as the Guard builds one: absent values left out."""
    return {"step": step, **{k: v for k, v in raw.items() if v is not None}}


def twins(kind: str, params: dict[str, Any]) -> tuple[Check[Any], Check[Any]]:
    cls = REGISTRY[kind]
    return cls(cls.params_model(**params), CONTEXT), cls(cls.params_model(**params), CONTEXT)


@pytest.mark.parametrize(
    ("kind", "params"), KINDS, ids=[f"{k}{i}" for i, (k, _) in enumerate(KINDS)]
)
@settings(max_examples=60, deadline=None)
@given(run=st.lists(steps, min_size=1, max_size=14))
def test_fast_path_decides_as_the_pure_decision(
    kind: str, params: dict[str, Any], run: list[dict[str, Any]]
) -> None:
    slow, fast = twins(kind, params)
    for step, raw in enumerate(run):
        obs = observation(raw, step)
        if not obs.keys() >= slow.observes():
            continue  # the Guard evaluates neither
        slow.update(obs)
        expected = slow.verdict()
        quick = fast.observe(obs)
        assert repr(fast.state_dict()) == repr(slow.state_dict())
        if quick is not None:
            assert expected is not None and expected.ok
            observed, limit, comparison, inputs = quick
            assert repr((observed, limit, comparison)) == repr(
                (expected.observed, expected.limit, expected.comparison)
            )
            assert repr(fast.decide_on(inputs)) == repr(expected)
        assert repr(fast.verdict()) == repr(expected)


@pytest.mark.parametrize(
    ("kind", "params"), KINDS, ids=[f"{k}{i}" for i, (k, _) in enumerate(KINDS)]
)
def test_a_healthy_step_is_a_fast_pass(kind: str, params: dict[str, Any]) -> None:
    _, fast = twins(kind, params)
    quick = None
    for step in range(6):  # distinct, healthy values: every window fills, nothing repeats
        x = 1.0 + step / 100
        obs = {"step": step, "loss": x, "grad_norm": x, "lr": x, "tokens_per_sec": 10 * x}
        quick = fast.observe({**obs, "components": {"a": x, "b": x}})
    assert quick is not None
    assert fast.verdict() is not None and fast.verdict().ok  # type: ignore[union-attr]


def test_a_failing_step_takes_the_full_decision() -> None:
    slow, fast = twins("gradient_norm", {"min_norm": 0.01, "max_norm": 10.0, "patience": 1})
    quick = []
    for norm in (1.0, 2.0, 1e3):
        slow.update({"grad_norm": norm})
        quick.append(fast.observe({"grad_norm": norm}))
    assert quick[1] is not None  # in range, the bounds taken at the first step: a fast pass
    assert quick[2] is None  # exploding: the full decision, which fails
    failed = fast.verdict()
    assert failed is not None and not failed.ok and "exploding" in failed.detail
    assert repr(failed) == repr(slow.verdict())
