"""The pv importer, as a pure function: what each pv entry becomes, and what it refuses.

Nothing may be invented: ship_blocking is copied or marked for review, a threshold in prose
is never imported, a structured block's numbers arrive unchanged, and evidence traingate
cannot run stays external. The fixtures in ``tests/fixtures/pv`` are pv-shaped contracts
written from the upstream format's description.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from traingate.contract.pv_import import Imported, import_pv
from traingate.contract.pv_mapping import PvImportError, changelog_entry, normalise_id
from traingate.contract.schema import CONTRACT_ID, GATE_ID, INVARIANT_ID, Contract

PV = Path(__file__).resolve().parents[1] / "fixtures" / "pv"
PRETRAIN = yaml.safe_load((PV / "pretrain-v2.yaml").read_text(encoding="utf-8"))
THIS = "tests/contract/test_pv_import.py::test_resolvable_pytest_evidence_is_kept"


def imported(data: dict[str, Any] | None = None, **kwargs: Any) -> Imported:
    return import_pv(copy.deepcopy(data or PRETRAIN), **kwargs)


def rows(result: Imported) -> dict[str, tuple[str, str]]:
    return {r.source_id: (r.status, r.target) for r in result.rows}


def by_id(result: Imported, key: str, ident: str) -> dict[str, Any]:
    (entry,) = [e for e in result.contract.get(key, []) if e["id"] == ident]
    return entry


def test_the_realistic_fixture_validates_as_a_traingate_contract_model() -> None:
    contract = Contract.model_validate(imported().contract)
    assert contract.contract == "C-TRAIN-PRETRAIN-V2"
    assert contract.version == "1.5.0"
    assert contract.title == "Pretraining loop contract"
    assert contract.status == "draft"  # ACTIVE in pv, but entries need a human
    assert [e.version for e in contract.changelog] == ["1.5.0", "1.4.0", "1.3.0", "1.2.0", "1.0.0"]
    assert contract.changelog[0].date == dt.date(2026, 4, 22)
    assert contract.changelog[0].change == "added convergence gate"


def test_every_source_id_gets_one_row() -> None:
    got = rows(imported())
    pv_ids = [i["id"] for i in PRETRAIN["invariants"]] + [g["id"] for g in PRETRAIN["gates"]]
    blocks = ["per_step_metrics", "convergence", "no_placeholder", "reproducibility"]
    modes = ["hyperparameter_defaults.from_scratch", "hyperparameter_defaults.finetune"]
    assert set(got) == {"C-TRAIN-PRETRAIN-V2", *pv_ids, *blocks, *modes}
    assert len(imported().rows) == len(got)


def test_structured_blocks_map_onto_the_kinds_with_their_numbers_unchanged() -> None:
    result = imported()
    stem = "INV-TRAIN-PRETRAIN-V2"
    metrics = by_id(result, "invariants", f"{stem}-METRICS-001")
    assert (metrics["check"], metrics["at"], metrics["on_violation"]) == (
        "metrics_present",
        "step",
        "abort",
    )
    assert metrics["params"] == {
        "observations": ["step", "loss", "grad_norm", "lr", "tokens_per_sec"]
    }
    patience = by_id(result, "invariants", f"{stem}-CONV-001")
    assert (patience["at"], patience["on_violation"]) == ("validation", "stop")
    assert patience["params"] == {"patience": 3, "min_epochs": 2, "min_delta": 0.0}
    target = by_id(result, "invariants", f"{stem}-CONV-002")
    assert (target["at"], target["params"]) == ("final", {"target_val_loss": 3.0})
    placeholder = by_id(result, "invariants", f"{stem}-PLACEHOLDER-001")
    assert placeholder["params"] == {"window": 5, "fingerprint": {"loss": 1.0, "grad_norm": 1.0}}
    assert rows(result)["convergence"] == ("mapped", f"{stem}-CONV-001, {stem}-CONV-002")


def test_hyperparameter_defaults_become_mode_rows() -> None:
    modes = imported().contract["modes"]
    assert modes["from-scratch"] == {
        "regime": "from_scratch",
        "lr": 3.0e-4,
        "warmup": 1000,
        "target_val_loss": 3.0,
    }
    finetune = modes["finetune"]
    assert (finetune["regime"], finetune["lr"], finetune["warmup"]) == ("finetune", 5.0e-5, 100)
    assert finetune["description"].startswith("DRAFT (needs a human): pv also sets batch_size=16")
    got = rows(imported())
    assert got["hyperparameter_defaults.from_scratch"] == ("mapped", "modes.from-scratch")
    assert got["hyperparameter_defaults.finetune"] == ("draft", "modes.finetune")


def test_a_mode_row_missing_a_field_is_not_imported() -> None:
    data = copy.deepcopy(PRETRAIN)
    del data["hyperparameter_defaults"]["finetune"]["target_val_loss"]
    result = imported(data)
    assert "finetune" not in result.contract["modes"]
    (row,) = [r for r in result.rows if r.source_id == "hyperparameter_defaults.finetune"]
    assert row.status == "skipped" and "no target_val_loss" in row.note


def test_prose_invariants_are_never_imported_but_kept_in_the_description() -> None:
    result = imported()
    assert all(not i["id"].startswith("INV-PRE-") for i in result.contract["invariants"])
    assert rows(result)["INV-PRE-008"] == ("skipped", "")
    description = result.contract["description"]
    assert "DRAFT (needs a human), not imported:" in description
    assert "tokens/s stays above 1000 on the reference machine" in description
    assert "cargo bench --bench throughput" in description
    assert not any("1000" in str(i["params"]) for i in result.contract["invariants"])


def test_ship_blocking_is_copied_or_marked_for_review_never_invented() -> None:
    result = imported()
    assert by_id(result, "gates", "GATE-PRE-001")["ship_blocking"] is True
    unstated = by_id(result, "gates", "GATE-PRE-003")  # pv gives no ship_blocking
    assert unstated["ship_blocking"] is False
    assert unstated["title"].startswith("DRAFT (needs a human): ship_blocking not given")
    assert rows(result)["GATE-PRE-003"][0] == "draft"


def test_a_gate_over_a_prose_invariant_is_not_imported() -> None:
    result = imported()
    assert {g["id"] for g in result.contract["gates"]} == {
        "GATE-PRE-001",
        "GATE-PRE-002",
        "GATE-PRE-003",
    }
    assert rows(result)["GATE-PRE-004"] == ("skipped", "")
    assert (
        "GATE-PRE-004: requires INV-PRE-005, not imported. ship-blocking"
        in (result.contract["description"])
    )


def test_evidence_from_other_languages_stays_external() -> None:
    gate = by_id(imported(), "gates", "GATE-PRE-001")
    assert gate["external_evidence"] == [
        "crates/aprender/tests/metrics.rs::every_step_emits_every_metric"
    ]
    assert "evidence" not in gate


def test_resolvable_pytest_evidence_is_kept() -> None:
    """A pytest id the project has becomes evidence; one it lacks stays external."""
    found = by_id(imported(resolves=lambda tid: tid == THIS), "gates", "GATE-PRE-002")
    assert found["evidence"] == [THIS]
    assert found["external_evidence"] == [
        "crates/aprender/tests/shards.rs::no_placeholder_after_exhaustion"
    ]
    unresolved = by_id(imported(), "gates", "GATE-PRE-002")
    assert "evidence" not in unresolved
    assert f"pytest {THIS}" in unresolved["external_evidence"]


def test_unknown_blocks_and_verdicts_are_reported_not_imported() -> None:
    result = imported()
    assert rows(result)["reproducibility"] == ("skipped", "")
    (gate_row,) = [r for r in result.rows if r.source_id == "GATE-PRE-001"]
    assert "verdict PASS" in gate_row.note and "`contracts verify` derives it" in gate_row.note
    assert all("verdict" not in g and "discharge_status" not in g for g in result.contract["gates"])


def test_status_follows_pv_only_when_nothing_needs_a_human() -> None:
    data = {
        "contract_id": "C-MODES-ONLY",
        "metadata": {"version": "1.0.0", "title": "Modes", "status": "ACTIVE"},
        "changelog": ["1.0.0 (2026-01-01): first"],
        "hyperparameter_defaults": {"finetune": {"lr": 1e-5, "warmup": 10, "target_val_loss": 2.0}},
    }
    result = imported(data)
    assert result.contract["status"] == "active"
    assert result.needs_human() == []
    data["metadata"]["status"] = "DEPRECATED"
    assert imported(data).contract["status"] == "deprecated"
    data["per_step_metrics"] = {"required": ["loss"], "forbid_null": True}
    assert imported(data).contract["status"] == "draft"  # its invariant names no falsifier


@pytest.mark.parametrize(
    ("raw", "prefix", "pattern", "want"),
    [
        ("C-TRAIN-PRETRAIN-V2", "C", CONTRACT_ID, "C-TRAIN-PRETRAIN-V2"),
        ("c_tiny.metrics", "C", CONTRACT_ID, "C-TINY-METRICS"),
        ("INV-PRE-001", "INV", INVARIANT_ID, "INV-PRE-001"),
        ("inv-pre-7", "INV", INVARIANT_ID, "INV-PRE-007"),
        ("GATE-TINY-1", "GATE", GATE_ID, "GATE-TINY-001"),
        ("gate-pre-throughput", "GATE", GATE_ID, "GATE-PRE-THROUGHPUT-001"),
        ("GATE-42", "GATE", GATE_ID, "GATE-STEM-042"),
    ],
)
def test_ids_are_kept_or_normalised_deterministically(
    raw: str, prefix: str, pattern: str, want: str
) -> None:
    assert normalise_id(raw, prefix, pattern, "STEM", set()) == want


def test_a_normalised_id_never_collides() -> None:
    taken = {"GATE-PRE-001"}
    assert normalise_id("gate pre 1", "GATE", GATE_ID, "X", taken) == "GATE-PRE-002"
    assert normalise_id("GATE-PRE-001", "GATE", GATE_ID, "X", taken) == "GATE-PRE-003"


def test_a_normalised_gate_id_keeps_the_original_in_its_title() -> None:
    gate = by_id(imported(yaml.safe_load((PV / "tiny.yaml").read_text())), "gates", "GATE-TINY-001")
    assert gate["title"] == "Every step logs step and loss (pv id GATE-TINY-1)"


def test_changelog_strings_become_dated_entries() -> None:
    assert changelog_entry("1.5.0 (2026-04-22): added convergence gate", ("c", 0)) == {
        "version": "1.5.0",
        "date": dt.date(2026, 4, 22),
        "change": "added convergence gate",
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("1.0.0 - first version", "cannot read changelog entry"),
        ("1.0.0 (2026-02-30): bad day", "is no date"),
        ("1.0 (2026-02-01): not semver", "is not semver"),
    ],
)
def test_an_unreadable_changelog_entry_names_its_field(entry: str, message: str) -> None:
    data = copy.deepcopy(PRETRAIN)
    data["metadata"]["changelog"].append(entry)
    with pytest.raises(PvImportError) as info:
        imported(data)
    assert info.value.loc == ("metadata", "changelog", 5)
    assert message in str(info.value)
    assert str(info.value).startswith("metadata.changelog[5]: ")


@pytest.mark.parametrize(
    ("edit", "loc"),
    [
        (lambda d: d["metadata"].update(version="1.6.0"), ("metadata", "changelog")),
        (lambda d: d["metadata"].update(status="RELEASED"), ("metadata", "status")),
        (lambda d: d["convergence"].update(patience="three"), ("convergence", "patience")),
        (lambda d: d["gates"][0].update(ship_blocking="yes"), ("gates", 0, "ship_blocking")),
        (lambda d: d["per_step_metrics"].update(required=[]), ("per_step_metrics", "required")),
        (lambda d: d["invariants"][2].pop("id"), ("invariants", 2, "id")),
    ],
)
def test_malformed_pv_fields_are_located_errors(edit: Any, loc: tuple[Any, ...]) -> None:
    data = copy.deepcopy(PRETRAIN)
    edit(data)
    with pytest.raises(PvImportError) as info:
        imported(data)
    assert info.value.loc == loc


def test_a_file_without_contract_id_is_not_pv() -> None:
    with pytest.raises(PvImportError, match="no top-level `contract_id`"):
        import_pv({"contract": "C-X"})
