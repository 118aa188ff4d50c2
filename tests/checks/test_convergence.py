"""Unit tests for the ``convergence`` kind (C-TRAIN-CONVERGENCE): patience at validation,
the target at the final point, the params a contract may pair with each point, and resume.

The shipped contract's properties are in falsifiers/test_convergence.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.convergence import (
    Convergence,
    ConvergenceParams,
    check_convergence,
    check_convergence_target,
)
from traingate.checks.decision import CheckContext
from traingate.contract.loading import LoadedContract, load_contract
from traingate.contract.presets import shipped
from traingate.contract.regime import Finetune

from .conftest import FINETUNE, feed

PLATEAU = [4.0, 3.0, 3.0, 3.0, 3.0]  # a best at epoch 1, then three validations without one


def validations(losses: list[float]) -> list[dict[str, float]]:
    return [{"epoch": e, "step": 10 * (e + 1), "val_loss": v} for e, v in enumerate(losses)]


def make(**params: object) -> Convergence:
    return Convergence(ConvergenceParams.model_validate(params), FINETUNE)


def test_registered_at_validation_and_final() -> None:
    assert REGISTRY["convergence"] is Convergence
    assert Convergence.points == {"validation", "final"}
    assert make().observes() == {"epoch", "val_loss"}
    target = make(target_val_loss="target_val_loss")
    assert target.observes() == {"val_loss"}
    defaults = ConvergenceParams()
    assert (defaults.patience, defaults.min_epochs, defaults.min_delta) == (3, 0, 0.0)


def test_a_run_that_keeps_improving_passes() -> None:
    verdicts = feed(make(), validations([4.0, 3.5, 3.2, 3.1, 3.05]))
    assert all(d is not None and d.ok for d in verdicts)
    last = verdicts[-1]
    assert last is not None and last.metrics["since_best"] == 0.0
    assert "new best" in last.detail


def test_a_plateau_fires_when_patience_runs_out() -> None:
    verdicts = feed(make(), validations(PLATEAU))
    assert [d is not None and d.ok for d in verdicts] == [True, True, True, True, False]
    fired = verdicts[-1]
    assert fired is not None
    assert (fired.observed, fired.limit, fired.comparison) == (3.0, 3.0, "<")
    assert fired.metrics["best"] == 3.0
    assert "for 3 validation(s) (patience 3)" in fired.detail and "plateaued" in fired.hint


def test_min_epochs_holds_the_stop_back() -> None:
    held = feed(make(patience=1, min_epochs=4), validations([3.0, 3.0, 3.0, 3.0]))
    assert [d is not None and d.ok for d in held] == [True, True, True, False]
    early = held[1]
    assert early is not None and "not judged before min_epochs 4" in early.detail


def test_min_delta_must_be_beaten() -> None:
    check = make(patience=1, min_delta=0.5)
    verdicts = feed(check, validations([3.0, 2.5, 1.9]))
    assert [d is not None and d.ok for d in verdicts] == [True, False, True]
    assert check.values.best == 1.9 and check.values.since_best == 0


def test_non_finite_val_loss_is_never_a_best() -> None:
    check = make(patience=2)
    verdicts = feed(check, validations([math.nan, math.inf, 2.0]))
    assert [d is not None and d.ok for d in verdicts] == [True, False, True]
    assert check.values.best == 2.0
    first = check_convergence(
        val_loss=-math.inf,
        best=math.inf,
        since_best=0,
        epoch=0,
        params=ConvergenceParams(),
        context=FINETUNE,
    )
    assert first.metrics["improved"] == 0.0 and first.metrics["best"] == math.inf


def test_the_final_target_passes_at_or_below_and_fires_above() -> None:
    context = CheckContext(Finetune(), {"target_val_loss": 2.2})
    params = ConvergenceParams.model_validate({"target_val_loss": "target_val_loss"})
    check = Convergence(params, context)
    assert feed(check, [{"val_loss": 2.2, "epoch": None}])[0].ok  # type: ignore[union-attr]
    above = check_convergence_target(val_loss=2.3, params=params, context=context)
    assert not above.ok and above.limit == 2.2 and above.comparison == "<="
    assert "final val loss 2.3 vs target 2.2" in above.detail
    assert not check_convergence_target(val_loss=math.nan, params=params, context=context).ok
    with pytest.raises(ValueError, match="no target_val_loss"):
        check_convergence_target(val_loss=1.0, params=ConvergenceParams(), context=context)


def test_patience_without_an_epoch_is_an_error() -> None:
    check = make()
    with pytest.raises(ValueError, match="needs the validation's epoch"):
        check.update({"val_loss": 1.0, "epoch": None})


def test_resume_continues_the_count() -> None:
    """A check loaded from a state_dict mid-plateau fires at the same validation."""
    stream = validations(PLATEAU)
    first = make()
    feed(first, stream[:3])
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert resumed.values == first.values and resumed.verdict() == first.verdict()
    tail = feed(resumed, stream[3:])
    assert [d is not None and d.ok for d in tail] == [True, False]
    fresh = make()
    assert fresh.state_dict() == {"best": math.inf, "since_best": 0, "last": None}


@pytest.mark.parametrize(
    "params",
    [{"patience": 0}, {"min_epochs": -1}, {"min_delta": -0.1}, {"min_delta": math.inf}],
)
def test_out_of_range_params_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ConvergenceParams.model_validate(params)


def contract_with(tmp_path: Path, **invariant: object) -> LoadedContract:
    """Load the shipped convergence contract with its invariants replaced by one convergence
    invariant of ``invariant``'s fields (and no gates)."""
    data = yaml.safe_load(shipped("C-TRAIN-CONVERGENCE")[0].read_text(encoding="utf-8"))
    data["invariants"] = [{"id": "INV-TC-001", "title": "t", "check": "convergence", **invariant}]
    data["gates"] = []
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_contract(path)


@pytest.mark.parametrize(
    ("invariant", "message"),
    [
        (
            {"at": "validation", "params": {"target_val_loss": 2.0}, "on_violation": "warn"},
            "target_val_loss is judged at the final point",
        ),
        ({"at": "final", "params": {}, "on_violation": "warn"}, "needs target_val_loss"),
        (
            {
                "at": "final",
                "params": {"target_val_loss": 2, "patience": 2},
                "on_violation": "warn",
            },
            "patience apply at validation",
        ),
        (
            {"at": "final", "params": {"target_val_loss": 2}, "on_violation": "stop"},
            "on_violation `stop` ends the loop early",
        ),
    ],
)
def test_a_contract_pairs_the_params_with_their_point(
    tmp_path: Path, invariant: dict[str, object], message: str
) -> None:
    loaded = contract_with(tmp_path, **invariant)
    assert loaded.contract is None
    assert any(message in f.message for f in loaded.findings), loaded.findings


def test_a_contract_may_stop_at_validation(tmp_path: Path) -> None:
    loaded = contract_with(tmp_path, at="validation", params={"patience": 2}, on_violation="stop")
    assert loaded.contract is not None, loaded.findings
    inv = loaded.contract.invariants[0]
    assert inv.on_violation == "stop" and isinstance(inv.params, ConvergenceParams)
    assert inv.params.patience == 2
