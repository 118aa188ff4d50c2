"""What both early-stop integration tests share: the shipped C-TRAIN-CONVERGENCE patience
invariant (``on_violation: stop``) with other params, and what a stopped or a patient run's
verdict must say."""

from __future__ import annotations

from pathlib import Path

import yaml

from traingate.ci.runcheck import check_run
from traingate.contract.presets import shipped
from traingate.runtime.verdict import load_verdict, run_status


def patience_contract(folder: Path, *, patience: int, min_delta: float) -> Path:
    """INV-CONV-001 alone (stop at validation) with these params: patience 1 and
    ``min_delta`` 100 stop at the second validation; a patience above the run's number of
    validations never stops it."""
    data = yaml.safe_load(shipped("C-TRAIN-CONVERGENCE")[0].read_text(encoding="utf-8"))
    first = data["invariants"][0]
    first["params"].update(patience=patience, min_delta=min_delta)
    data["invariants"], data["gates"] = [first], data["gates"][:1]
    path = folder / f"early-stop-{patience}-{min_delta:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def assert_stopped_early(run_dir: Path, *, at_epoch: int) -> None:
    """The run stopped at validation ``at_epoch``: ok, status early_stop, and ``contracts
    check`` passes it and says so."""
    verdict = load_verdict(run_dir)
    assert verdict.ok and run_status(verdict) == "early_stop"
    assert verdict.early_stop is not None
    assert (verdict.early_stop.invariant, verdict.early_stop.epoch) == ("INV-CONV-001", at_epoch)
    assert verdict.invariants["INV-CONV-001"].evaluations == at_epoch + 1
    result = check_run(run_dir)
    assert result.ok, result.failures
    assert any("stopped early" in note for note in result.notes)


def assert_ran_through(run_dir: Path, *, validations: int) -> None:
    """The run never stopped early: every validation judged, status pass."""
    verdict = load_verdict(run_dir)
    assert verdict.early_stop is None and run_status(verdict) == "pass"
    assert verdict.invariants["INV-CONV-001"].evaluations == validations
