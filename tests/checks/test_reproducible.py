"""Unit tests for the ``reproducible`` kind (INV-REPRO-001) and the Guard's reference run."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
from pydantic import ValidationError

from traingate.checks.base import REGISTRY
from traingate.checks.reproducible import (
    REFERENCE_STEPS,
    RUN_STEPS,
    Reproducible,
    ReproducibleParams,
    check_reproducible,
)
from traingate.contract.presets import shipped
from traingate.runtime.evidence import RunDirError, read_evidence
from traingate.runtime.guard import Guard
from traingate.runtime.planning import UnevaluableWarning, Unsupplied
from traingate.runtime.reference import Reference, read_reference, step_series

from .conftest import FINETUNE, maker

make = maker(Reproducible, FINETUNE)
REPRO = shipped("C-TRAIN-REPRODUCIBLE")


def steps(n: int, offset: float = 0.0) -> dict[str, list[float]]:
    """``n`` steps of a run: loss 3 − i/10 and grad_norm 1 + i/100, shifted by ``offset``."""
    return {
        "loss": [3.0 - i / 10 + offset for i in range(n)],
        "grad_norm": [1.0 + i / 100 + offset for i in range(n)],
    }


def guarded_run(run_dir: Path | None, values: dict[str, list[float]], **guard: object) -> Guard:
    """A Guard of C-TRAIN-REPRODUCIBLE fed ``values`` step by step, then its final point."""
    g = Guard(REPRO, run_dir=run_dir, **guard)  # type: ignore[arg-type]
    for i, (loss, norm) in enumerate(zip(values["loss"], values["grad_norm"], strict=True)):
        g.step(i, loss=loss, grad_norm=norm, lr=1e-3)
    g.final()
    return g


def test_registered_with_the_upstream_defaults() -> None:
    assert REGISTRY["reproducible"] is Reproducible
    params = ReproducibleParams()
    assert (params.observations, params.steps, params.tolerance) == (
        ["loss", "grad_norm"],
        20,
        1e-6,
    )
    assert Reproducible.points == frozenset({"final"})


@pytest.mark.parametrize(
    "raw",
    [
        {"steps": 0},
        {"tolerance": -1e-9},
        {"observations": []},
        {"observations": ["loss", "loss"]},
        {"window": 3},
    ],
)
def test_params_are_strict(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ReproducibleParams.model_validate(raw)


def test_a_name_listed_twice_is_named_as_every_kind_names_it() -> None:
    with pytest.raises(ValidationError, match="observations are listed twice: loss"):
        ReproducibleParams.model_validate({"observations": ["loss", "grad_norm", "loss"]})


def test_identical_steps_pass_and_report_the_largest_difference() -> None:
    decision = check_reproducible(
        run=steps(20), reference=steps(25), params=ReproducibleParams(), context=FINETUNE
    )
    assert decision.ok and decision.observed == 0.0 and decision.limit == 1e-6
    assert "first 20 steps" in decision.detail


def test_a_difference_names_the_step_the_observation_and_both_values() -> None:
    run = steps(20)
    run["grad_norm"][7] += 1e-3
    decision = check_reproducible(
        run=run, reference=steps(20), params=ReproducibleParams(), context=FINETUNE
    )
    assert not decision.ok and decision.comparison == "<="
    assert decision.detail.startswith("step 7: grad_norm")
    assert repr(run["grad_norm"][7]) in decision.detail and "1.07" in decision.detail
    assert math.isclose(decision.observed, 1e-3) and "seed" in decision.hint


def test_the_first_failing_step_is_reported_loss_before_grad_norm() -> None:
    run = steps(20, offset=1.0)
    decision = check_reproducible(
        run=run, reference=steps(20), params=ReproducibleParams(), context=FINETUNE
    )
    assert decision.detail.startswith("step 0: loss")


def test_a_short_reference_is_a_violation_naming_it() -> None:
    decision = check_reproducible(
        run=steps(20), reference=steps(12), params=ReproducibleParams(), context=FINETUNE
    )
    assert not decision.ok and (decision.observed, decision.limit) == (12.0, 20.0)
    assert "the reference run records 12" in decision.detail


def test_the_check_keeps_only_what_it_compares() -> None:
    check = make(steps=3, observations=["loss"])
    check.update({RUN_STEPS: steps(50), REFERENCE_STEPS: steps(50)})
    state = check.state_dict()
    assert state["last"] == [{"loss": [3.0, 2.9, 2.8]}, {"loss": [3.0, 2.9, 2.8]}]
    restored = make(steps=3, observations=["loss"])
    restored.load_state_dict(json.loads(json.dumps(state)))
    assert restored.verdict() == check.verdict() and check.verdict().ok  # type: ignore[union-attr]


def test_step_series_orders_by_step_and_ignores_other_points() -> None:
    series = step_series(
        ["step", "step", "validation", "step", "final"],
        [1, 0, 1, 1, 1],
        ["loss", "loss", "val_loss", "loss", "loss"],
        [5.0, 4.0, 9.0, 6.0, 7.0],
    )
    assert series == {"loss": [4.0, 6.0]}  # step 1 recorded twice keeps its last value


@pytest.mark.filterwarnings("ignore::traingate.runtime.planning.UnevaluableWarning")  # run a
def test_guard_with_a_same_valued_reference_passes(tmp_path: Path) -> None:
    guarded_run(tmp_path / "a", steps(20)).close()
    verdict = guarded_run(tmp_path / "b", steps(20), reference=tmp_path / "a").close()
    assert verdict.invariants["INV-REPRO-001"].status == "pass" and verdict.ok
    start = next(read_evidence(tmp_path / "b" / "evidence.jsonl"))
    assert start["reference"]["path"] == str(tmp_path / "a")
    assert start["reference"]["steps"] == 20
    assert start["reference"]["contract_sha256"]["C-TRAIN-REPRODUCIBLE"]


@pytest.mark.filterwarnings("ignore::traingate.runtime.planning.UnevaluableWarning")  # run a
def test_guard_with_a_different_reference_warns(tmp_path: Path) -> None:
    guarded_run(tmp_path / "a", steps(20)).close()
    verdict = guarded_run(tmp_path / "b", steps(20, 1e-5), reference=tmp_path / "a").close()
    record = verdict.invariants["INV-REPRO-001"]
    assert (record.status, record.violations) == ("warn", 1)
    assert verdict.ok  # advisory: the gate does not block shipping
    warning = [
        e for e in read_evidence(tmp_path / "b" / "evidence.jsonl") if e["event"] == "warning"
    ]
    assert warning[0]["invariant"] == "INV-REPRO-001" and "step 0: loss" in warning[0]["detail"]


def test_a_reference_built_in_memory_is_compared_too() -> None:
    reference = Reference(Path("log.csv"), steps(20, 1.0))
    g = guarded_run(None, steps(20), reference=reference)
    assert g.judge().invariants["INV-REPRO-001"].status == "warn"


def test_without_a_reference_it_is_named_unevaluable_not_passed(tmp_path: Path) -> None:
    with pytest.warns(
        UnevaluableWarning,
        match=r"INV-REPRO-001 \(reproducible\) needs a reference run \(--reference RUN",
    ):
        g = guarded_run(tmp_path / "a", steps(20))
    assert [type(u) for u in g.unevaluable] == [Unsupplied]
    verdict = g.close()
    assert verdict.invariants["INV-REPRO-001"].status == "not_evaluated"
    events = list(read_evidence(tmp_path / "a" / "evidence.jsonl"))
    assert events[0]["reference"] is None
    (unevaluable,) = [e for e in events if e["event"] == "unevaluable"]
    assert "needs a reference run (--reference RUN" in unevaluable["invariants"][0]["message"]


def test_an_integration_supplying_steps_is_not_told_twice() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = Guard(REPRO, supplies={"loss", "grad_norm"})
    assert [type(u) for u in g.unevaluable] == [Unsupplied] and len(caught) == 1


def test_a_missing_reference_dir_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no-such-run: no such reference run dir"):
        Guard(REPRO, reference=tmp_path / "no-such-run")


def test_a_reference_without_metrics_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"metrics\.parquet: missing"):
        read_reference(tmp_path)
    (tmp_path / "metrics.parquet").write_text("not parquet", encoding="utf-8")
    with pytest.raises(RunDirError, match=r"metrics\.parquet: unreadable"):
        read_reference(tmp_path)


def test_a_reference_without_step_metrics_is_an_error(tmp_path: Path) -> None:
    g = Guard(REPRO, run_dir=tmp_path, reference=Reference(Path("x"), steps(1)))
    g.validation(0, val_loss=2.0)
    g.close()
    with pytest.raises(RunDirError, match="holds no step metrics"):
        read_reference(tmp_path)


def test_the_reference_records_its_seed_from_config_json(tmp_path: Path) -> None:
    guarded_run(tmp_path, steps(20), reference=Reference(Path("x"), steps(20))).close()
    (tmp_path / "config.json").write_text(json.dumps({"seed": 7}), encoding="utf-8")
    assert read_reference(tmp_path).identity()["seed"] == 7
