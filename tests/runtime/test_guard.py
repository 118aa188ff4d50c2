"""The runtime Guard inside a plain torch loop: violations, evidence, verdicts, resume, syncs."""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError

import traingate
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.shipped import shipped_contracts
from traingate.runtime.evidence import RunDirError, last_chain, read_evidence
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.verdict import SCHEMA_VERSION, load_verdict

from .conftest import (
    CLASSES,
    CONTRACT_REF,
    FROM_SCRATCH_CAP,
    Loop,
    WriteContract,
    cold_start_cap,
    divergence,
    finite_step,
    gate,
    requires_kind,
    shipped_ids,
)


def train(guard: Guard, loop: Loop, epochs: int = 2, steps: int = 4) -> list[float]:
    """The integration a user writes: guard.step after backward, guard.validation per epoch."""
    losses = []
    step = 0
    for epoch in range(epochs):
        for x, y in loop.batches(steps):
            loss = loop.forward_backward(x, y)
            grad_norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
            guard.step(step, loss=loss, grad_norm=grad_norm, lr=0.1)
            loop.opt.step()
            loop.opt.zero_grad()
            losses.append(float(loss))
            step += 1
        guard.validation(epoch, val_loss=loop.val_loss())
    return losses


def events(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_evidence(run_dir / "evidence.jsonl"))


# -- a healthy run --------------------------------------------------------------------------


def test_healthy_loop_passes_and_writes_the_run_dir(
    tmp_path: Path, write_contract: WriteContract, loop: Loop
) -> None:
    path = write_contract([divergence()])
    with Guard([path], regime=FromScratch(CLASSES), run_dir=tmp_path / "run") as guard:
        losses = train(guard, loop, epochs=2, steps=4)

    verdict = load_verdict(tmp_path / "run")
    assert verdict == guard.close()  # closing twice returns the verdict written
    assert verdict.evidence_head == last_chain(tmp_path / "run" / "evidence.jsonl")
    assert verdict.model_copy(update={"evidence_head": None}) == guard.judge()
    assert verdict.schema_version == SCHEMA_VERSION
    assert verdict.traingate_version == traingate.__version__
    assert verdict.ok is True
    assert verdict.contracts == {"C-TEST-GUARD": "0.3.1"}
    inv = verdict.invariants["INV-TEST-005"]
    assert (inv.status, inv.evaluations, inv.violations) == ("pass", 2, 0)
    assert verdict.gates["GATE-TEST-001"].status == "pass"
    assert [e["event"] for e in events(tmp_path / "run")] == ["start", "summary", "end"]

    table = pq.read_table(tmp_path / "run" / "metrics.parquet").to_pylist()
    step_losses = [r["value"] for r in table if r["point"] == "step" and r["name"] == "loss"]
    assert step_losses == pytest.approx(losses)
    vals = [r for r in table if r["name"] == "val_loss"]
    assert [(r["point"], r["epoch"], r["step"]) for r in vals] == [
        ("validation", 0, 3),
        ("validation", 1, 7),
    ]


# -- violations -----------------------------------------------------------------------------


def test_violation_carries_id_contract_values_formula_where_and_hint(
    tmp_path: Path, write_contract: WriteContract
) -> None:
    bad_init = Loop(init_std=30.0)  # logits far from uniform: epoch-0 val loss ≫ 2·ln C
    path = write_contract([divergence()])

    with (
        pytest.raises(InvariantViolation) as caught,
        Guard([path], regime=FromScratch(CLASSES), run_dir=tmp_path / "run") as guard,
    ):
        train(guard, bad_init, epochs=2, steps=3)

    expected = float(bad_init.val_loss())  # the weights the first validation saw
    assert expected > cold_start_cap()
    err = caught.value
    assert err.invariant_id == "INV-TEST-005"
    assert err.contract == CONTRACT_REF
    assert err.observed == pytest.approx(expected)
    assert err.limit == pytest.approx(cold_start_cap())
    assert err.formula == FROM_SCRATCH_CAP
    assert err.evaluated == f"2 * ln({CLASSES}) = {cold_start_cap():.6g}"
    assert (err.step, err.epoch, err.rank) == (2, 0, 0)
    assert "cold start" in err.hint
    message = str(err)
    for part in ("INV-TEST-005", CONTRACT_REF, "step 2, epoch 0, rank 0", FROM_SCRATCH_CAP):
        assert part in message

    violation = [e for e in events(tmp_path / "run") if e["event"] == "violation"]
    assert len(violation) == 1
    assert violation[0]["invariant"] == "INV-TEST-005"
    assert violation[0]["observed"] == pytest.approx(expected)
    assert violation[0]["evaluated"] == err.evaluated
    verdict = load_verdict(tmp_path / "run")
    assert verdict.ok is False
    assert verdict.aborted_by.invariant == "INV-TEST-005"
    assert verdict.crashed is None
    assert verdict.invariants["INV-TEST-005"].status == "fail"
    assert verdict.gates["GATE-TEST-001"].status == "fail"


def test_same_observation_passes_under_the_regime_it_was_calibrated_for(
    write_contract: WriteContract,
) -> None:
    path = write_contract([divergence()])
    val = 0.9 * 10.0  # under finetune's 10.0, far above from-scratch 2·ln(8)
    with Guard([path], regime=Finetune()) as guard:
        guard.validation(0, val_loss=val)
    assert guard.judge().ok is True
    with pytest.raises(InvariantViolation), Guard([path], regime=FromScratch(CLASSES)) as guard:
        guard.validation(0, val_loss=val)


def test_contract_hint_replaces_the_checks_hint(write_contract: WriteContract) -> None:
    path = write_contract([divergence(hint="re-run with --regime from-scratch")])
    with pytest.raises(InvariantViolation) as caught, Guard([path], regime=Finetune()) as guard:
        guard.validation(0, val_loss=11.0)
    assert caught.value.hint == "re-run with --regime from-scratch"
    assert "hint: re-run with --regime from-scratch" in str(caught.value)


def test_warn_invariant_logs_and_records_a_warning_but_does_not_raise(
    tmp_path: Path, write_contract: WriteContract, caplog: pytest.LogCaptureFixture
) -> None:
    bad_init = Loop(init_std=30.0)
    path = write_contract([divergence(on_violation="warn")])
    with (
        caplog.at_level(logging.WARNING, logger="traingate"),
        Guard([path], regime=FromScratch(CLASSES), run_dir=tmp_path / "run") as guard,
    ):
        train(guard, bad_init, epochs=1, steps=2)

    warnings = [r for r in caplog.records if r.name == "traingate"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "INV-TEST-005" in warnings[0].getMessage()
    kinds = [e["event"] for e in events(tmp_path / "run")]
    assert "warning" in kinds
    assert "violation" not in kinds
    verdict = load_verdict(tmp_path / "run")
    assert verdict.invariants["INV-TEST-005"].status == "warn"
    assert verdict.aborted_by is None
    # warn keeps the run alive, but its ship-blocking gate does not ship on it
    assert verdict.ok is False
    assert all(g.status == "fail" for g in verdict.gates.values() if g.ship_blocking)


# -- the run dir survives crashes --------------------------------------------------------


@pytest.mark.parametrize(
    "death",
    [RuntimeError("DataLoader worker died"), KeyboardInterrupt()],
    ids=["exception", "ctrl-c"],
)
def test_run_dir_is_written_when_the_loop_dies_of_something_else(
    tmp_path: Path, write_contract: WriteContract, loop: Loop, death: BaseException
) -> None:
    path = write_contract([divergence()])
    losses = []
    with (
        pytest.raises(type(death)),
        Guard([path], regime=FromScratch(CLASSES), run_dir=tmp_path / "run") as guard,
    ):
        for step, (x, y) in enumerate(loop.batches(3)):
            loss = loop.forward_backward(x, y)
            guard.step(step, loss=loss)
            losses.append(float(loss))
            loop.opt.step()
            loop.opt.zero_grad()
        raise death

    run = tmp_path / "run"
    verdict = load_verdict(run)
    assert verdict.crashed == f"{type(death).__name__}: {death}"
    assert verdict.ok is False
    assert verdict.last_step == 2
    end = events(run)[-1]
    assert (end["event"], end["crashed"], end["ok"]) == ("end", verdict.crashed, False)
    table = pq.read_table(run / "metrics.parquet").to_pylist()
    assert [r["value"] for r in table if r["name"] == "loss"] == pytest.approx(losses)


# -- nothing evaluated is never a pass -------------------------------------------------------


@requires_kind("finite")
@pytest.mark.parametrize("blocking", [True, False])
def test_never_evaluated_invariant_blocks_only_when_ship_blocking(
    write_contract: WriteContract, loop: Loop, blocking: bool
) -> None:
    gates = [
        gate("GATE-TEST-001", ["INV-TEST-001"]),
        gate("GATE-TEST-005", ["INV-TEST-005"], ship_blocking=blocking),
    ]
    path = write_contract([finite_step(), divergence()], gates)
    with Guard([path], regime=FromScratch(CLASSES)) as guard:
        for step, (x, y) in enumerate(loop.batches(3)):  # steps only: no validation ever runs
            guard.step(step, loss=loop.forward_backward(x, y))
            loop.opt.step()
    verdict = guard.judge()
    assert verdict.invariants["INV-TEST-001"].status == "pass"
    assert verdict.invariants["INV-TEST-005"].status == "not_evaluated"
    assert verdict.gates["GATE-TEST-005"].status == "not_evaluated"
    assert verdict.evaluations == 3
    assert verdict.ok is (not blocking)


def test_run_that_evaluated_zero_invariants_is_not_ok(
    write_contract: WriteContract, loop: Loop
) -> None:
    path = write_contract(
        [divergence()], [gate("GATE-TEST-005", ["INV-TEST-005"], ship_blocking=False)]
    )
    with Guard([path], regime=FromScratch(CLASSES)) as guard:
        for step, (x, y) in enumerate(loop.batches(3)):
            guard.step(step, loss=loop.forward_backward(x, y))
    verdict = guard.judge()
    assert verdict.evaluations == 0
    assert verdict.invariants["INV-TEST-005"].status == "not_evaluated"
    assert verdict.ok is False  # nothing ship-blocking is pending, yet nothing was checked

    with Guard([path], regime=FromScratch(CLASSES)) as guard:
        guard.validation(0, val_loss=1.0)
    assert guard.judge().ok is True  # the same contract, once evaluated, passes

    with Guard([path], regime=FromScratch(CLASSES), only=[]) as guard:
        guard.validation(0, val_loss=1.0)
    assert guard.judge().invariants == {}
    assert guard.judge().ok is False


# -- evidence.jsonl ---------------------------------------------------------------------------


def test_evidence_is_flushed_per_event_and_append_only(
    tmp_path: Path, write_contract: WriteContract
) -> None:
    path = write_contract([divergence(on_violation="warn")])
    run = tmp_path / "run"
    with Guard([path], regime=FromScratch(CLASSES), run_dir=run, summary_every=1) as guard:
        assert [e["event"] for e in events(run)] == ["start"]  # readable while still open
        guard.step(0, loss=torch.tensor(2.0))
        assert [e["event"] for e in events(run)] == ["start", "summary"]
        guard.validation(0, val_loss=100.0)
        seen = events(run)
        assert [e["event"] for e in seen] == ["start", "summary", "warning"]
        assert seen[-1]["invariant"] == "INV-TEST-005"
        assert seen[-1]["observed"] == 100.0
    first_run = (run / "evidence.jsonl").read_bytes()
    assert [e["event"] for e in events(run)][-1] == "end"

    with pytest.raises(RunDirError, match="already holds a run"):
        Guard([path], regime=FromScratch(CLASSES), run_dir=run)
    assert (run / "evidence.jsonl").read_bytes() == first_run  # a refused open writes nothing
    with Guard([path], regime=FromScratch(CLASSES), run_dir=run, resume=True) as guard:
        guard.validation(0, val_loss=1.0)
    assert (run / "evidence.jsonl").read_bytes().startswith(first_run)
    assert [e["event"] for e in events(run)].count("start") == 2


def test_torn_last_line_is_skipped_but_a_corrupt_middle_line_is_an_error(
    tmp_path: Path, write_contract: WriteContract
) -> None:
    path = write_contract([divergence()])
    run = tmp_path / "run"
    with Guard([path], regime=FromScratch(CLASSES), run_dir=run, summary_every=1) as guard:
        guard.step(0, loss=2.0)
        guard.validation(0, val_loss=1.0)
    log = run / "evidence.jsonl"
    whole = events(run)
    assert [e["event"] for e in whole] == ["start", "summary", "end"]
    with log.open("a", encoding="utf-8") as fh:
        fh.write('{"event": "summary", "step": 12, "INV-TEST-')  # killed mid-write
    assert events(run) == whole

    lines = log.read_text(encoding="utf-8").split("\n")
    lines[1] = lines[1][: len(lines[1]) // 2]
    log.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(RunDirError, match=r"evidence.jsonl:2: corrupt evidence line"):
        events(run)


def test_corrupt_complete_line_before_a_torn_one_is_an_error(
    tmp_path: Path, write_contract: WriteContract
) -> None:
    path = write_contract([divergence()])
    run = tmp_path / "run"
    with Guard([path], regime=FromScratch(CLASSES), run_dir=run) as guard:
        guard.validation(0, val_loss=1.0)
    log = run / "evidence.jsonl"
    start, end, _ = log.read_text(encoding="utf-8").split("\n")
    # "end" was written whole (its newline made it to disk), then damaged; a torn line follows.
    log.write_text(f'{start}\n{end[:20]}\n{{"event": "summ', encoding="utf-8")
    with pytest.raises(RunDirError, match=r"evidence.jsonl:2: corrupt evidence line"):
        events(run)


# -- resume ------------------------------------------------------------------------------------


def test_only_selects_invariants_and_rejects_unknown_ids(write_contract: WriteContract) -> None:
    path = write_contract([divergence("INV-TEST-005"), divergence("INV-TEST-006")])
    guard = Guard([path], regime=FromScratch(CLASSES), only=["INV-TEST-006"])
    assert [t.invariant.id for t in guard.tracked] == ["INV-TEST-006"]
    guard.validation(0, val_loss=1.0)
    assert list(guard.judge().invariants) == ["INV-TEST-006"]

    with pytest.raises(ValueError, match=r"unknown invariant ids: INV-NOPE-999$"):
        Guard([path], regime=FromScratch(CLASSES), only=["INV-TEST-006", "INV-NOPE-999"])


def test_only_works_on_the_shipped_contracts() -> None:
    ids = shipped_ids("non_divergence")
    guard = Guard(regime=FromScratch(50257), only=ids)
    assert [t.invariant.id for t in guard.tracked] == ids
    guard.validation(0, val_loss=math.log(50257))  # a legitimate cold start (seed 003)
    assert guard.judge().ok is True


def test_cold_start_only_invariants_do_not_run_for_a_finetune() -> None:
    cold_only = [
        inv.id for c in shipped_contracts() for inv in c.invariants if "finetune" not in inv.regimes
    ]
    assert cold_only, "the shipped contracts have a from-scratch-only invariant (initial loss)"
    finetune = Guard(regime=Finetune())
    cold = Guard(regime=FromScratch(CLASSES))
    assert not set(cold_only) & {t.invariant.id for t in finetune.tracked}
    assert set(cold_only) <= {t.invariant.id for t in cold.tracked}
    gates = finetune.judge().gates
    for g in gates.values():
        if set(g.requires) <= set(cold_only):
            assert g.status == "not_applicable"


def test_only_accepts_a_known_invariant_that_the_regime_excludes() -> None:
    guard = Guard(regime=Finetune(), only=["INV-TRAIN-004", "INV-TRAIN-005"])
    assert [t.invariant.id for t in guard.tracked] == ["INV-TRAIN-005"]
    assert guard.judge().gates["GATE-TRAIN-004"].status == "not_applicable"


def test_violation_survives_pickling(write_contract: WriteContract) -> None:
    path = write_contract([divergence()])
    with pytest.raises(InvariantViolation) as caught, Guard([path], regime=Finetune()) as guard:
        guard.validation(0, val_loss=11.0)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.invariant_id, copy.observed, copy.limit, str(copy)) == (
        "INV-TEST-005",
        11.0,
        10.0,
        str(caught.value),
    )


def test_params_are_checked_against_declared_bounds(write_contract: WriteContract) -> None:
    path = write_contract([divergence()])
    with pytest.raises(ValueError, match=r"vocab_size = 1\.0 is below its minimum 2"):
        Guard([path], params={"vocab_size": 1})
    with pytest.raises(ValueError, match="vocab_size must be an integer"):
        Guard([path], params={"vocab_size": 2.5})
    with pytest.raises(ValueError, match="below its minimum"):
        Guard(params={"vocab_size": 1})  # the shipped contract declares the same bound
    with pytest.raises(ValidationError):
        FromScratch(1)
    guard = Guard([path], params={"vocab_size": 2})
    assert guard.params == {"vocab_size": 2}


def test_a_threshold_without_a_parameter_value_fails_at_construction(
    write_contract: WriteContract,
) -> None:
    inv = divergence()
    inv["params"]["epoch_zero_cap"] = {"finetune": FROM_SCRATCH_CAP, "from_scratch": "10.0"}
    path = write_contract([inv])
    with pytest.raises(ValueError, match="vocab_s"):
        Guard([path], regime=Finetune(), params={"vocab_sise": 50257})  # typo: vocab_sise


# -- host transfers -----------------------------------------------------------------------------
