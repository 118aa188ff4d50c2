"""Unit tests for the ``loss_spike`` kind (INV-TRAIN-003)."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.decision import CheckContext, Decision
from traingate.checks.loss_spike import LossSpike, LossSpikeParams, check_loss_spike
from traingate.contract.regime import FromScratch

from .conftest import FINETUNE, SCRATCH, maker, scalar_feed

make = maker(LossSpike, SCRATCH)
feed = scalar_feed("loss")


def first_spike(
    params: LossSpikeParams, loss: float, total: float, n: int, context: CheckContext = FINETUNE
) -> Decision | None:
    """The pure decision on ``loss`` after ``n`` losses summing to ``total``, none a spike."""
    return check_loss_spike(
        loss=loss, window_sum=total, window_count=n, consecutive=0, params=params, context=context
    )


def test_registered_with_llm_foundry_defaults() -> None:
    assert REGISTRY["loss_spike"] is LossSpike
    params = LossSpikeParams()
    assert params.spike_factor.evaluate({}) == 2.0
    assert (params.window, params.patience) == (100, 4)


def test_not_evaluated_until_the_window_is_full() -> None:
    decisions = feed(make(window=5), [1.0] * 5 + [1.0])
    assert decisions[:5] == [None] * 5
    assert decisions[5] is not None and decisions[5].ok


def test_steady_losses_pass() -> None:
    decisions = feed(make(window=10), [3.0 - 0.01 * i for i in range(50)])
    assert all(d.ok for d in decisions[10:] if d)


def test_exactly_factor_times_mean_is_a_spike() -> None:
    params = LossSpikeParams(window=4)
    at = first_spike(params, 2.0 * 1.5, 6.0, 4)
    below = first_spike(params, math.nextafter(3.0, 0.0), 6.0, 4)
    assert at is not None and at.metrics["spike"] == 1.0 and at.metrics["consecutive"] == 1
    assert below is not None and below.metrics["spike"] == 0.0
    assert at.limit == 3.0 and at.evaluated == "2 * 1.5 = 3"


def test_fires_after_more_than_patience_consecutive_spikes() -> None:
    # Spikes enter the window, so a persistent spike must keep growing to stay one.
    decisions = feed(make(window=3), [1.0] * 3 + [1e2, 1e4, 1e6, 1e8, 1e10])
    spikes = [d for d in decisions if d]
    assert [d.metrics["consecutive"] for d in spikes] == [1, 2, 3, 4, 5]
    assert [d.ok for d in spikes] == [True, True, True, True, False]
    assert "spike 5 in a row" in spikes[-1].detail and spikes[-1].comparison == "<"


def test_a_normal_step_resets_the_count() -> None:
    # The spikes enter the window (as in llm-foundry), so the mean rises with them.
    decisions = feed(make(window=2, patience=1), [1.0, 1.0, 5.0, 1.0, 20.0, 200.0])
    assert [d.metrics["consecutive"] for d in decisions if d] == [1, 0, 1, 2]
    assert [d.ok for d in decisions if d] == [True, True, True, False]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_is_a_spike_and_stays_out_of_the_window(bad: float) -> None:
    check = make(window=2, patience=0)
    decisions = feed(check, [1.0, 3.0, bad, 2.0])
    assert decisions[2] is not None and not decisions[2].ok
    assert decisions[3] is not None and decisions[3].metrics["window_mean"] == 2.0
    assert check.state_dict()["window"] == [3.0, 2.0]


def test_step_without_loss_is_not_evaluated() -> None:
    check = make(window=1)
    feed(check, [1.0, 1.0])
    check.update({"grad_norm": 1.0})
    assert check.verdict() is None
    assert check.state_dict()["window"] == [1.0]


def test_running_mean_tracks_the_window_over_a_long_run() -> None:
    rng = random.Random(3)
    losses = [rng.uniform(0.1, 1e4) for _ in range(5_000)]
    check = make(window=100)
    decisions = feed(check, losses)
    for i in (100, 2_345, 4_999):
        expected = statistics.fmean(losses[i - 100 : i])
        assert decisions[i] is not None
        assert decisions[i].metrics["window_mean"] == pytest.approx(expected, rel=1e-12)


def test_spike_factor_may_be_regime_keyed() -> None:
    params = LossSpikeParams.model_validate(
        {"spike_factor": {"finetune": "1.5", "from_scratch": "3"}, "window": 1}
    )
    tuned = first_spike(params, 2.0, 1.0, 1)
    scratch = first_spike(params, 2.0, 1.0, 1, CheckContext(FromScratch(8)))
    assert tuned is not None and tuned.metrics["spike"] == 1.0
    assert scratch is not None and scratch.metrics["spike"] == 0.0


@pytest.mark.parametrize("params", [{"window": 0}, {"patience": -1}, {"factor": 2}])
def test_bad_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LossSpikeParams.model_validate(params)


def test_loading_a_larger_window_is_an_error() -> None:
    first = make(window=4)
    feed(first, [1.0] * 4)
    with pytest.raises(ValueError, match="window"):
        make(window=2).load_state_dict(first.state_dict())
