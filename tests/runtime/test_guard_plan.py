"""Up-front honesty at run time: a Guard told its plan names what it cannot evaluate, at start.

Issue 9, defect 8: a healthy 60-step run exited 3 because INV-TRAIN-003 (``loss_spike``, a
100-loss window) was never evaluated, and nothing said so until the verdict. The planner's
decisions are tested in ``test_planning.py``; here the Guard warns, records and lists them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from traingate import FromScratch, Guard, UnevaluableWarning
from traingate.ci.runcheck import check_run
from traingate.contract.shipped import shipped_contracts_dir
from traingate.runtime.evidence import read_evidence

PRETRAIN = shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"
SPIKE = "INV-TRAIN-003 (loss_spike) needs 100 steps before its first decision; the run plans 60"


def test_a_60_step_plan_warns_records_and_lists_the_spike_window(tmp_path: Path) -> None:
    with pytest.warns(UnevaluableWarning, match=r"INV-TRAIN-003 \(loss_spike\) needs 100") as w:
        guard = Guard([PRETRAIN], regime=FromScratch(256), run_dir=tmp_path, max_steps=60)
    assert [str(r.message) for r in w] == [SPIKE]
    assert w[0].filename == __file__  # points at the caller's Guard(...) line
    assert [u.message for u in guard.unevaluable] == [SPIKE]
    for step in range(3):
        guard.step(step, loss=5.5, grad_norm=1.0)
    guard.close()
    (event,) = [
        e for e in read_evidence(tmp_path / "evidence.jsonl") if e["event"] == "unevaluable"
    ]
    assert event["max_steps"] == 60 and event["max_validations"] is None
    reason = "needs 100 steps before its first decision; the run plans 60"
    assert event["invariants"] == [
        {
            "invariant": "INV-TRAIN-003",
            "needed": 101,
            "planned": 60,
            "message": SPIKE,
            "reason": reason,
        }
    ]
    checked = check_run(tmp_path)
    assert checked.problems == []  # the derived verdict agrees: still gateable
    # the verdict says why it was never evaluated in the start's words, not a generic line
    assert guard.closed is not None
    assert guard.closed.invariants["INV-TRAIN-003"].unevaluable == reason
    assert f"INV-TRAIN-003: never evaluated: {reason}" in checked.failures


def test_a_plan_the_contracts_fit_says_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)
        guard = Guard(
            [PRETRAIN], regime=FromScratch(256), run_dir=tmp_path, max_steps=500, max_validations=5
        )
    assert guard.unevaluable == []
    guard.close()
    assert not [
        e for e in read_evidence(tmp_path / "evidence.jsonl") if e["event"] == "unevaluable"
    ]


def test_no_plan_no_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)
        assert Guard([PRETRAIN], regime=FromScratch(256)).unevaluable == []


def test_a_plan_without_validations_names_the_validation_invariants() -> None:
    with pytest.warns(UnevaluableWarning) as w:
        guard = Guard([PRETRAIN], regime=FromScratch(256), max_steps=500, max_validations=0)
    names = {u.invariant_id for u in guard.unevaluable}
    assert "INV-TRAIN-005" in names  # non_divergence decides at validations
    assert all(u.at == "validation" for u in guard.unevaluable)
    assert len(w) == len(guard.unevaluable)


def test_an_integration_that_never_supplies_predictions_is_told_which_invariants_starve() -> None:
    liveness = shipped_contracts_dir() / "liveness-v1.yaml"
    with pytest.warns(UnevaluableWarning) as w:
        guard = Guard(
            [PRETRAIN, liveness],
            regime=FromScratch(256),
            supplies={"loss", "grad_norm", "val_loss"},  # what a Trainer callback feeds
        )
    starved = {u.invariant_id: u.message for u in guard.unevaluable}
    assert "INV-TRAIN-001" not in starved and "INV-TRAIN-005" not in starved
    assert starved["INV-LIVE-001"] == (
        "INV-LIVE-001 (distinct_predictions) needs labels, predictions, which this loop "
        "never supplies: it will not be evaluated"
    )
    assert starved["INV-TRAIN-006"].startswith("INV-TRAIN-006 (expression) needs tokens_per_sec")
    assert {str(r.message) for r in w} == set(starved.values())


def test_finite_needs_one_of_its_observations() -> None:
    with pytest.warns(UnevaluableWarning, match=r"INV-TRAIN-001 \(finite\) needs grad_norm or"):
        Guard([PRETRAIN], regime=FromScratch(256), only=["INV-TRAIN-001"], supplies={"val_loss"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)
        Guard([PRETRAIN], regime=FromScratch(256), only=["INV-TRAIN-001"], supplies={"loss"})
