"""Shipped contracts by purpose or id: ``traingate.shipped(...)`` and the Guard's default."""

from __future__ import annotations

import pytest

import traingate
from traingate import FromScratch, Guard
from traingate.contract.presets import PRESETS, defining, shipped
from traingate.contract.shipped import ContractError, shipped_contracts, shipped_contracts_dir


def names(paths) -> list[str]:
    return [p.name for p in paths]


def test_pretrain_is_the_loop_contract_and_the_default() -> None:
    assert names(shipped("pretrain")) == ["training-loop-pretrain-v1.yaml", "convergence-v1.yaml"]
    assert shipped() == shipped("pretrain")
    assert traingate.shipped is shipped


def test_presets_and_ids_combine_in_order_each_once() -> None:
    chosen = shipped("classifier", "C-TRAIN-PRETRAIN", "C-CONFUSION")
    assert names(chosen) == [
        "training-loop-pretrain-v1.yaml",
        "liveness-v1.yaml",
        "calibration-v1.yaml",
        "confusion-v1.yaml",
    ]
    assert names(shipped("all")) == sorted(p.name for p in shipped_contracts_dir().glob("*.yaml"))
    assert len(shipped("all")) == len(shipped_contracts())


def test_every_preset_names_real_shipped_contracts() -> None:
    ids = {c.contract for c in shipped_contracts()}
    for preset, (contracts, purpose) in PRESETS.items():
        assert set(contracts) <= ids, preset
        assert purpose


def test_an_unknown_name_lists_what_there_is() -> None:
    with pytest.raises(ContractError, match="no shipped preset or contract 'pretrian'") as err:
        shipped("pretrian")
    assert "presets: pretrain, export, classifier, multitask, all" in str(err.value)
    assert "C-LIVENESS" in str(err.value)


def test_only_without_contracts_loads_the_contracts_defining_those_ids() -> None:
    assert names(defining(["INV-LIVE-001", "INV-TRAIN-001", "INV-LIVE-002"])) == [
        "liveness-v1.yaml",
        "training-loop-pretrain-v1.yaml",
    ]
    with pytest.raises(ContractError, match="no shipped contract defines INV-NOPE-001"):
        defining(["INV-NOPE-001"])
    guard = Guard(regime=FromScratch(256), only=["INV-LIVE-001"])
    assert [c.contract for c in guard.contracts] == ["C-LIVENESS"]


def test_the_default_guard_holds_only_the_pretrain_invariants() -> None:
    guard = Guard(regime=FromScratch(256))
    assert [c.contract for c in guard.contracts] == ["C-TRAIN-PRETRAIN", "C-TRAIN-CONVERGENCE"]
    loop = {f"INV-TRAIN-00{i}" for i in range(1, 9)}
    assert {t.invariant.id for t in guard.tracked} == loop | {"INV-CONV-001", "INV-CONV-002"}
