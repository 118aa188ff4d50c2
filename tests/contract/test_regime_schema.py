"""Regimes (a tagged union), run parameters' bounds, and the contract schema's strictness.

Nothing is coerced: ``"2"`` is not 2, ``"true"`` is not True, a float is not an int, and
an unknown key anywhere is an error.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from pydantic import ValidationError

from traingate.checks.non_divergence import NonDivergenceParams
from traingate.contract.regime import Finetune, FromScratch, parse_regime, regime_from_cli
from traingate.contract.schema import (
    ChangelogEntry,
    Contract,
    Gate,
    Invariant,
    Parameter,
    is_semver,
)
from traingate.contract.thresholds import RegimeThreshold, resolve

# regimes


def test_from_scratch_positional_and_keyword() -> None:
    assert FromScratch(50257).vocab_size == 50257
    assert FromScratch(vocab_size=8) == FromScratch(8)
    assert FromScratch(8).symbols() == {"vocab_size": 8.0}
    assert FromScratch(8).kind == "from_scratch"


def test_finetune_has_no_vocab() -> None:
    assert Finetune().symbols() == {}
    assert "vocab_size" not in Finetune.model_fields
    with pytest.raises(ValidationError, match="extra"):
        Finetune(vocab_size=8)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        parse_regime({"kind": "finetune", "vocab_size": 5})


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"kind": "from_scratch", "vocab_size": 1}, "greater_than_equal"),
        ({"kind": "from_scratch", "vocab_size": "50257"}, "int_type"),
        ({"kind": "from_scratch", "vocab_size": 50257.0}, "int_type"),
        ({"kind": "from_scratch", "vocab_size": True}, "int_type"),
        ({"kind": "from_scratch"}, "missing"),
        ({"kind": "pretrain"}, "union_tag_invalid"),
        ({}, "union_tag_not_found"),
        ({"kind": "finetune", "vocab_size": 5}, "extra_forbidden"),
    ],
)
def test_parse_regime_rejects(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_regime(data)
    assert info.value.errors()[0]["type"] == error


def test_parse_regime_accepts_tagged_forms_and_round_trips() -> None:
    assert parse_regime({"kind": "finetune"}) == Finetune()
    assert parse_regime({"kind": "from_scratch", "vocab_size": 8}) == FromScratch(8)
    for regime in (Finetune(), FromScratch(50257)):
        assert parse_regime(regime.model_dump()) == regime


def test_regimes_are_frozen_and_strict() -> None:
    regime = FromScratch(8)
    with pytest.raises(ValidationError):
        regime.vocab_size = 9  # type: ignore[misc]
    with pytest.raises(ValidationError):
        FromScratch(8.0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FromScratch()


def test_regime_from_cli() -> None:
    assert regime_from_cli("finetune", None) == Finetune()
    assert regime_from_cli("finetune", 50257) == Finetune()  # finetune ignores the vocab
    assert regime_from_cli("from-scratch", 50257) == FromScratch(50257)
    assert regime_from_cli("from_scratch", 8) == FromScratch(8)
    with pytest.raises(ValueError, match="needs vocab_size"):
        regime_from_cli("from-scratch", None)
    with pytest.raises(ValueError, match="unknown regime"):
        regime_from_cli("pretrain", 8)


def test_regime_threshold_resolves_per_regime() -> None:
    threshold = RegimeThreshold.model_validate({"finetune": "10.0", "from_scratch": "2 * ln(v)"})
    assert resolve(threshold, Finetune(), {}).value == 10.0
    scratch = resolve(threshold, FromScratch(8), {"v": 50257})
    assert math.isclose(scratch.value, 2 * math.log(50257))
    assert scratch.evaluated == "2 * ln(50257) = 21.6498"
    # the regime's own symbols win over a stale run value of the same name
    cap = RegimeThreshold.model_validate({"finetune": 1, "from_scratch": "vocab_size"})
    assert resolve(cap, FromScratch(8), {"vocab_size": 3}).value == 8.0
    with pytest.raises(ValidationError):
        RegimeThreshold.model_validate({"finetune": 1})


# parameters


def test_parameter_check_value_bounds() -> None:
    vocab = Parameter(type="int", min=2)
    assert vocab.check_value("vocab_size", 2) == 2.0  # the minimum itself is allowed
    assert vocab.check_value("vocab_size", 50257.0) == 50257.0
    with pytest.raises(ValueError, match="below its minimum 2"):
        vocab.check_value("vocab_size", 1)
    with pytest.raises(ValueError, match="must be an integer"):
        vocab.check_value("vocab_size", 2.5)
    share = Parameter(type="float", min=0, max=1)
    assert share.check_value("share", 0.25) == 0.25
    assert share.check_value("share", 1) == 1.0
    with pytest.raises(ValueError, match="above its maximum 1"):
        share.check_value("share", 1.0001)
    with pytest.raises(ValueError, match="below its minimum 0"):
        share.check_value("share", -0.1)
    assert Parameter(type="float").check_value("free", -1e300) == -1e300


def test_bounded_float_parameter_rejects_infinities() -> None:
    share = Parameter(type="float", min=0, max=1)
    for bad in (math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"^parameter share "):
            share.check_value("share", bad)


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        (Parameter(type="int", min=2), math.nan),
        (Parameter(type="int", min=2), math.inf),
        (Parameter(type="int"), -math.inf),
        (Parameter(type="float"), math.nan),
        (Parameter(type="float"), math.inf),
        (Parameter(type="float", min=0, max=1), math.nan),
    ],
    ids=["int-nan", "int-inf", "int-minus-inf", "float-nan", "float-inf", "bounded-float-nan"],
)
def test_parameter_rejects_non_finite(spec: Parameter, bad: float) -> None:
    with pytest.raises(ValueError, match=r"^parameter p "):
        spec.check_value("p", bad)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "integer"},
        {"type": "int", "min": "2"},
        {"type": "int", "maximum": 3},
        {"type": "int", "min": True},
        {},
    ],
)
def test_parameter_schema_is_strict(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Parameter.model_validate(data)


# contract schema

GOOD: dict[str, Any] = {
    "contract": "C-SCHEMA",
    "version": "1.0.0",
    "title": "Schema",
    "status": "draft",
    "changelog": [{"version": "1.0.0", "date": dt.date(2026, 1, 1), "change": "first"}],
    "parameters": {"vocab_size": {"type": "int", "min": 2}},
    "invariants": [
        {
            "id": "INV-SCHEMA-001",
            "title": "Non-divergence",
            "check": "non_divergence",
            "at": "validation",
            "params": {"epoch_zero_cap": 10.0},
            "on_violation": "abort",
            "falsified_by": ["falsifiers/test_x.py::test_y"],
        }
    ],
    "gates": [{"id": "GATE-SCHEMA-001", "requires": ["INV-SCHEMA-001"], "ship_blocking": True}],
}


def with_(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of GOOD with the value at ``path`` replaced (``...`` deletes it)."""
    import copy

    data = copy.deepcopy(GOOD)
    target = data
    for part in path[:-1]:
        target = target[part]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_the_good_contract_validates() -> None:
    contract = Contract.model_validate(GOOD)
    assert contract.ref == "C-SCHEMA@1.0.0"
    assert contract.invariants[0].id == "INV-SCHEMA-001"


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("owner",), "me", "extra_forbidden"),
        (("invariants", 0, "severity"), "high", "extra_forbidden"),
        (("gates", 0, "discharged"), True, "extra_forbidden"),
        (("changelog", 0, "author"), "me", "extra_forbidden"),
        (("parameters", "vocab_size", "default"), 3, "extra_forbidden"),
        (("version",), 1, "string_type"),
        (("gates", 0, "ship_blocking"), "true", "bool_type"),
        (("gates", 0, "ship_blocking"), 1, "bool_type"),
        (("changelog", 0, "date"), "2026-01-01", "date_type"),
        (("invariants", 0, "falsified_by"), "falsifiers/test_x.py::test_y", "list_type"),
        (("invariants", 0, "on_violation"), "ABORT", "literal_error"),
        (("invariants", 0, "at"), "epoch", "literal_error"),
        (("status",), "released", "literal_error"),
        (("contract",), "TRAIN", "string_pattern_mismatch"),
        (("invariants", 0, "id"), "INV-SCHEMA-1", "string_pattern_mismatch"),
        (("gates", 0, "id"), "GATE-1", "string_pattern_mismatch"),
        (("gates", 0, "requires"), [], "too_short"),
        (("changelog",), [], "too_short"),
        (("title",), "   ", "string_too_short"),
        (("title",), ..., "missing"),
        (("invariants", 0, "check"), ..., "missing"),
        (("invariants", 0, "falsified_by", 0), "test_y", "string_pattern_mismatch"),
    ],
)
def test_contract_schema_is_strict(path: tuple[Any, ...], value: Any, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        Contract.model_validate(with_(path, value))
    types = {e["type"] for e in info.value.errors()}
    assert error in types, info.value.errors()


def test_models_are_frozen() -> None:
    gate = Gate.model_validate(GOOD["gates"][0])
    with pytest.raises(ValidationError):
        gate.ship_blocking = False  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ChangelogEntry(version="1.0.0", date=dt.date(2026, 1, 1), change="")
    inv = Invariant.model_validate(GOOD["invariants"][0])
    assert inv.params == NonDivergenceParams.model_validate({"epoch_zero_cap": 10.0})
    with pytest.raises(ValidationError):
        inv.params.ratio_limit = 3.0  # type: ignore[misc,assignment]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1.2.0", True),
        ("0.0.1", True),
        ("10.20.30", True),
        ("1.2.3-rc.1", True),
        ("1.2.3+build.5", True),
        ("1.2.3-rc.1+build.5", True),
        ("1.2", False),
        ("v1.2.3", False),
        ("01.2.3", False),
        ("1.2.3.4", False),
        ("1.2.x", False),
        ("", False),
    ],
)
def test_is_semver(text: str, ok: bool) -> None:
    assert is_semver(text) is ok
