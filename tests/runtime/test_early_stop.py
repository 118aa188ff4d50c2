"""The Guard's graceful early stop (``on_violation: stop``) and C-TRAIN-CONVERGENCE in the
default preset: a stop never raises, is recorded once, survives a resume, and a Guard that
is not given ``target_val_loss`` names INV-CONV-002 unevaluable at start."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

from traingate import Guard
from traingate.ci.runcheck import check_run
from traingate.contract.presets import shipped
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.evidence import read_evidence
from traingate.runtime.planning import Unbound, UnevaluableWarning
from traingate.runtime.verdict import run_status

CONVERGENCE = shipped("C-TRAIN-CONVERGENCE")
PLATEAU = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # patience 3: stops at epoch 4


def guard(run_dir: Path | None = None, **kwargs: object) -> Guard:
    params = {"target_val_loss": 2.5}
    return Guard(CONVERGENCE, regime=Finetune(), params=params, run_dir=run_dir, **kwargs)  # type: ignore[arg-type]


def test_a_stop_violation_sets_should_stop_without_raising(tmp_path: Path) -> None:
    g = guard(tmp_path / "run")
    stopped_at = []
    for epoch, val_loss in enumerate(PLATEAU):  # a loop that ignores the stop keeps going
        g.validation(epoch, val_loss=val_loss, step=10 * epoch)
        stopped_at.append(g.should_stop)
    assert stopped_at == [False, False, False, False, True, True]
    assert g.stop_reason is not None and g.stop_reason.startswith("INV-CONV-001: epoch 4:")
    g.final(val_loss=2.0)
    verdict = g.close()
    assert verdict.ok and run_status(verdict) == "early_stop"
    assert verdict.early_stop is not None
    assert (verdict.early_stop.step, verdict.early_stop.epoch) == (40, 4)
    record = verdict.invariants["INV-CONV-001"]
    assert (record.status, record.violations, record.on_violation) == ("warn", 2, "stop")
    assert verdict.invariants["INV-CONV-002"].status == "pass"
    events = list(read_evidence(tmp_path / "run" / "evidence.jsonl"))
    assert [e["event"] for e in events].count("early_stop") == 1  # recorded once
    assert [e["event"] for e in events].count("warning") == 2  # every violation counted
    end = events[-1]
    assert end["event"] == "end" and end["early_stop"]["invariant"] == "INV-CONV-001"
    assert check_run(tmp_path / "run").exit_code == 0


def test_the_early_stop_survives_a_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = guard(run_dir)
    for epoch, val_loss in enumerate(PLATEAU[:5]):
        first.validation(epoch, val_loss=val_loss, step=epoch)
    state = json.loads(json.dumps(first.state_dict()))
    first.interrupted = "interrupted by signal 15 (SIGTERM) at step 4"
    first.close()
    second = guard(run_dir, resume=True)
    assert not second.should_stop
    second.load_state_dict(state)
    assert second.should_stop and second.stop_reason == first.stop_reason
    second.final(val_loss=2.0)
    verdict = second.close()
    assert verdict.early_stop is not None and verdict.early_stop.epoch == 4
    result = check_run(run_dir)  # derived from the resume event, the stop being before it
    assert result.exit_code == 0, result.failures
    assert result.verdict.early_stop == verdict.early_stop


def test_the_default_guard_names_the_target_unevaluable_without_the_parameter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's Guard (a regime only) loads C-TRAIN-CONVERGENCE: no crash, no silent pass,
    and no warning either (the parameter is declared optional): an info line and an event."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)
        with caplog.at_level(logging.INFO, logger="traingate"):
            g = Guard(regime=FromScratch(50257), run_dir=tmp_path / "run")
    assert "INV-CONV-002 (convergence) needs the run parameter target_val_loss" in caplog.text
    assert "INV-CONV-001" in [t.invariant.id for t in g.tracked]
    unbound = [u for u in g.unevaluable if isinstance(u, Unbound)]
    assert [(u.invariant_id, u.missing) for u in unbound] == [
        ("INV-CONV-002", ("target_val_loss",))
    ]
    g.validation(0, val_loss=3.0)
    g.final(val_loss=0.1)  # a val loss at the final point, yet never judged
    verdict = g.close()
    assert verdict.invariants["INV-CONV-002"].status == "not_evaluated"
    assert verdict.invariants["INV-CONV-002"].evaluations == 0
    listed = [
        e for e in read_evidence(tmp_path / "run" / "evidence.jsonl") if e["event"] == "unevaluable"
    ]
    assert [i["invariant"] for i in listed[0]["invariants"]] == ["INV-CONV-002"]
    assert listed[0]["invariants"][0]["missing"] == ["target_val_loss"]


def test_a_given_target_is_judged_at_the_final_point() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)
        g = guard()
    assert not g.unevaluable
    g.validation(0, val_loss=3.0)
    g.final(val_loss=2.6)
    record = g.close().invariants["INV-CONV-002"]
    assert (record.status, record.evaluations) == ("warn", 1)  # 2.6 > 2.5


def test_a_required_parameter_missing_still_refuses_the_run(tmp_path: Path) -> None:
    text = (Path(CONVERGENCE[0]).read_text()).replace("required: false", "required: true")
    path = tmp_path / "required.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="INV-CONV-002: `target_val_loss` needs target_val_loss"):
        Guard([path], regime=Finetune())
