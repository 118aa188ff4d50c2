"""The Verdict model and its one policy: old files load, bad files are located, rules hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from traingate.errors import TraingateError
from traingate.runtime.evidence import RunDirError
from traingate.runtime.verdict import (
    InvariantRecord,
    Status,
    gate_status,
    invariant_outcome,
    invariant_status,
    load_verdict,
)

# the shape the Guard wrote before verdict.json had a schema_version
VERSION_1 = {
    "contracts": {"C-TRAIN": "1.0.0"},
    "regime": {"kind": "finetune"},
    "params": {"vocab_size": 50257},
    "only": None,
    "world_size": 1,
    "ok": True,
    "interrupted": None,
    "evaluations": 3,
    "aborted_by": None,
    "last_step": 2,
    "last_epoch": 0,
    "invariants": {
        "INV-A": {
            "status": "pass",
            "contract": "C-TRAIN@1.0.0",
            "title": "Finite",
            "check": "finite",
            "at": "step",
            "on_violation": "abort",
            "ship_blocking": True,
            "evaluations": 3,
            "violations": 0,
            "worst": {
                "observed": "nan",
                "limit": None,
                "comparison": "finite",
                "ok": True,
                "detail": "",
                "step": 1,
                "epoch": None,
                "metrics": {},
            },
            "last": None,
        }
    },
    "gates": {
        "G-A": {"status": "pass", "contract": "C", "requires": ["INV-A"], "ship_blocking": True},
        "G-B": {
            "status": "not_applicable",
            "contract": "C",
            "requires": ["INV-B"],
            "ship_blocking": True,
        },
    },
}


def write(tmp_path: Path, data: object) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "verdict.json").write_text(json.dumps(data))
    return run_dir


def test_a_file_without_schema_version_loads_as_version_1(tmp_path: Path) -> None:
    verdict = load_verdict(write(tmp_path, VERSION_1))
    assert verdict.schema_version == 1 and verdict.traingate_version is None
    assert verdict.excluded == ["INV-B"]  # recovered from its not_applicable gate
    assert verdict.params == {"vocab_size": 50257}  # an int stays an int
    worst = verdict.invariants["INV-A"].worst
    assert worst is not None and worst.observed != worst.observed  # "nan" → NaN
    assert verdict.to_dict()["invariants"]["INV-A"]["worst"]["observed"] == "nan"
    statuses = {i: r.status for i, r in verdict.invariants.items()}
    for g in verdict.gates.values():
        assert gate_status(g.requires, g.ship_blocking, statuses, verdict.excluded) == g.status


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"evaluations": "many"}, r"corrupt: `evaluations` 'many'"),
        ({"regime": {"kind": "sideways"}}, r"corrupt: `regime` "),
        ({"gates": {"G": {"status": "green"}}}, r"corrupt: gate G has status 'green'"),
    ],
)
def test_a_bad_field_is_named_with_the_file(tmp_path: Path, edit: dict, message: str) -> None:
    run_dir = write(tmp_path, {**VERSION_1, **edit})
    with pytest.raises(RunDirError, match=rf"verdict\.json: {message}") as caught:
        load_verdict(run_dir)
    assert isinstance(caught.value, TraingateError)


def test_invariant_status_and_outcome() -> None:
    assert invariant_status(0, 0, "abort") == "not_evaluated"
    assert invariant_status(4, 1, "abort") == "fail"
    assert invariant_status(4, 1, "warn") == "warn"
    assert invariant_status(4, 0, "warn") == "pass"
    warned = InvariantRecord(status="warn", ship_blocking=False, evaluations=4, violations=1)
    assert invariant_outcome(warned) == ("warn", "violated 1 time(s) (advisory)")
    blocking = warned.model_copy(update={"ship_blocking": True})
    assert invariant_outcome(blocking)[0] == "fail"
    pending = InvariantRecord(status="not_evaluated", ship_blocking=False, evaluations=0)
    assert invariant_outcome(pending)[0] == "skip"


@pytest.mark.parametrize(
    ("statuses", "blocking", "expected"),
    [
        ({"A": "pass", "B": "pass"}, True, "pass"),
        ({"A": "pass", "B": "warn"}, False, "warn"),  # advisory: warn, not pass
        ({"A": "pass", "B": "warn"}, True, "fail"),
        ({"A": "fail", "B": "pass"}, False, "fail"),
        ({"A": "pass", "B": "not_evaluated"}, True, "not_evaluated"),
        ({"A": "pass"}, True, "not_evaluated"),  # B not tracked: never a pass
        ({}, True, "not_selected"),
    ],
)
def test_gate_status(statuses: dict[str, Status], blocking: bool, expected: str) -> None:
    assert gate_status(["A", "B"], blocking, statuses, excluded=[]) == expected


def test_a_gate_whose_invariants_the_regime_excludes_is_not_applicable() -> None:
    assert gate_status(["A", "B"], True, {}, excluded=["A", "B"]) == "not_applicable"
