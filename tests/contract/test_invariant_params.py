"""An invariant's params are typed by its check kind in the schema's one validation pass.

No second pass and no raw re-read: ``Invariant.params`` is the kind's own params model as
soon as the invariant validates, and each way of getting it wrong is one pydantic error of
its own type, at the field it is about (the loader maps these to TG120, TG121 and TG122).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from traingate.checks.non_divergence import NonDivergenceParams
from traingate.contract.kinds import CheckParams
from traingate.contract.schema import Invariant


def invariant(**overrides: Any) -> dict[str, Any]:
    """A valid non-divergence invariant as plain data, with ``overrides`` applied."""
    data: dict[str, Any] = {
        "id": "INV-PARAMS-001",
        "title": "Non-divergence",
        "check": "non_divergence",
        "at": "validation",
        "params": {"epoch_zero_cap": 10.0},
        "on_violation": "abort",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def errors(data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    with pytest.raises(ValidationError) as info:
        Invariant.model_validate(data)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


def test_params_are_the_kinds_model_after_validation() -> None:
    inv = Invariant.model_validate(invariant())
    assert isinstance(inv.params, NonDivergenceParams)
    assert inv.params.epoch_zero_cap.source == "10"
    assert inv.params.ratio_limit.source == "2"  # the kind's default, typed as well


def test_an_unknown_kind_is_an_error_at_check_with_a_suggestion() -> None:
    with pytest.raises(ValidationError) as info:
        Invariant.model_validate(invariant(check="non_divergense"))
    (error,) = info.value.errors()
    assert (error["type"], error["loc"]) == ("check_kind", ("check",))
    assert "did you mean `non_divergence`?" in error["msg"]


def test_a_point_the_kind_cannot_run_at_is_an_error_at_at() -> None:
    assert errors(invariant(at="step")) == [("check_point", ("at",))]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"epoch_zero_cap": True}, [("threshold_type", ("params", "epoch_zero_cap"))]),
        (
            {"epoch_zero_cap": 10.0, "ratio_limt": 2.0},
            [("extra_forbidden", ("params", "ratio_limt"))],
        ),
        ({}, [("missing", ("params", "epoch_zero_cap"))]),
        (..., [("missing", ("params", "epoch_zero_cap"))]),  # an omitted block is {} too
        ([1], [("model_type", ("params",))]),
    ],
)
def test_params_errors_point_inside_params(params: Any, expected: list[tuple]) -> None:
    assert errors(invariant(params=params)) == expected


def test_a_wrong_point_and_wrong_params_are_both_reported() -> None:
    found = errors(invariant(at="step", params={"epoch_zero_cap": True}))
    assert found == [("check_point", ("at",)), ("threshold_type", ("params", "epoch_zero_cap"))]


def test_params_is_never_a_plain_mapping() -> None:
    annotation = Invariant.model_fields["params"].annotation
    assert annotation is CheckParams
