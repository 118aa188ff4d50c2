"""The confusion_rate kind (seed 001): both city-start tripwires, per locale."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.confusion import (
    ConfusionRate,
    ConfusionRateParams,
    check_confusion_rate,
    label_ids,
)
from traingate.checks.decision import CheckContext
from traingate.contract.regime import Finetune

from .conftest import verdict_after

CONTEXT = CheckContext(Finetune())
LABELS = {"O": 0, "B-city": 1, "I-city": 2, "B-postcode": 3, "I-postcode": 4}
LOCALES = {"US": 0, "FR": 1, "DE": 2}


def wire(to_labels: list[str], per_group: bool = True, max_rate: float = 0.01) -> ConfusionRate:
    params = ConfusionRateParams.model_validate(
        {
            "from_labels": ["B-city"],
            "to_labels": to_labels,
            "max_rate": max_rate,
            "per_group": per_group,
            "label_names": LABELS,
            "group_names": LOCALES,
        }
    )
    return ConfusionRate(params, CONTEXT)


def saint_albans(de_city_to_o: int) -> dict[str, torch.Tensor]:
    """100 addresses per locale, each "B-city I-city B-postcode"; in DE, ``de_city_to_o`` of
    the city-start tokens are tagged O (the collapse), none is ever tagged postcode."""
    gold = torch.tensor([1, 2, 3] * 300)
    locale = torch.arange(3).repeat_interleave(300)
    pred = gold.clone()
    de_city_starts = torch.nonzero((gold == 1) & (locale == 2)).flatten()
    pred[de_city_starts[:de_city_to_o]] = 0
    return {"predictions": pred, "labels": gold, "groups": locale}


def test_registered_for_validation() -> None:
    assert REGISTRY["confusion_rate"] is ConfusionRate
    assert ConfusionRate.points == frozenset({"validation"})
    assert set(ConfusionRate.gather) == {"predictions", "labels", "groups"}


def test_seed_001_postcode_wire_reads_zero_while_the_o_wire_fires() -> None:
    obs = saint_albans(de_city_to_o=40)
    postcode = verdict_after(wire(["B-postcode", "I-postcode"]), obs)
    to_o = verdict_after(wire(["O"]), obs)
    assert postcode.ok and postcode.observed == 0.0
    assert not to_o.ok and to_o.observed == 0.4
    assert "in group DE" in to_o.detail and "(40/100)" in to_o.detail
    assert to_o.metrics["rate/US"] == 0.0 and to_o.metrics["total/DE"] == 100.0


def test_per_group_catches_what_the_overall_rate_dilutes() -> None:
    obs = saint_albans(de_city_to_o=2)  # 2 % in DE, 0.67 % over all locales
    assert verdict_after(wire(["O"], per_group=False), obs).ok
    per_locale = verdict_after(wire(["O"]), obs)
    assert not per_locale.ok and per_locale.observed == 0.02


def test_boundary_exactly_the_limit_passes() -> None:
    assert verdict_after(wire(["O"]), saint_albans(de_city_to_o=1)).ok  # 1/100 = 0.01
    params = wire(["O"]).params
    assert check_confusion_rate(counts={"DE": (1, 100)}, params=params, context=CONTEXT).ok
    assert not check_confusion_rate(counts={"DE": (101, 10000)}, params=params, context=CONTEXT).ok
    assert not check_confusion_rate(
        counts={"US": (0, 5), "DE": (1, 99)}, params=params, context=CONTEXT
    ).ok


def test_nothing_measured_is_not_a_pass() -> None:
    params = wire(["O"]).params
    assert check_confusion_rate(counts={}, params=params, context=CONTEXT) is None
    assert check_confusion_rate(counts={"US": (0, 0)}, params=params, context=CONTEXT) is None
    no_cities = {
        "predictions": torch.zeros(4, dtype=torch.long),
        "labels": torch.zeros(4, dtype=torch.long),
        "groups": torch.zeros(4, dtype=torch.long),
    }
    assert verdict_after(wire(["O"]), no_cities) is None
    with pytest.raises(ValueError):
        check_confusion_rate(counts={"US": (3, 2)}, params=params, context=CONTEXT)


def test_batches_accumulate_and_padding_is_dropped() -> None:
    obs = saint_albans(de_city_to_o=40)
    pad = {
        "predictions": torch.zeros(10, dtype=torch.long),
        "labels": torch.full((10,), -100),
        "groups": torch.full((10,), 2),
    }
    first = {k: v[:450] for k, v in obs.items()}
    rest = {k: v[450:] for k, v in obs.items()}
    assert verdict_after(wire(["O"]), first, pad, rest).observed == 0.4


def test_per_group_without_groups_is_a_wiring_error() -> None:
    obs = saint_albans(0)
    del obs["groups"]
    with pytest.raises(KeyError):
        wire(["O"]).update(obs)
    assert verdict_after(wire(["O"], per_group=False), obs).ok


def test_label_names_must_resolve() -> None:
    assert label_ids(["B-city", 7], LABELS) == [1, 7]
    with pytest.raises(ValidationError):
        ConfusionRateParams.model_validate(
            {"from_labels": ["B-town"], "to_labels": ["O"], "max_rate": 0.01, "label_names": LABELS}
        )
    with pytest.raises(ValidationError):
        ConfusionRateParams.model_validate({"from_labels": [], "to_labels": [0], "max_rate": 0.01})
    ids_only = ConfusionRateParams.model_validate(
        {"from_labels": [1], "to_labels": [0], "max_rate": 0.01}
    )
    assert verdict_after(ConfusionRate(ids_only, CONTEXT), saint_albans(50)).observed == 50 / 300
