"""The run's verdict: the model ``verdict.json`` holds, and the one policy that judges it.

The Guard builds a :class:`Verdict` and writes it; ``contracts check``, the report and the
trainer load it with :func:`load_verdict`. Every status / gate / ok rule is a function here
that both sides call, so the writer and the readers cannot disagree:

* an invariant is ``not_evaluated`` until evaluated, ``fail`` once an ``abort`` invariant was
  violated, ``warn`` once a ``warn`` one was, else ``pass`` (:func:`invariant_status`);
* a gate fails on a failed required invariant, or on a warned one when it is ship-blocking;
  an advisory gate whose required invariant warned is ``warn``; one missing a required
  invariant is ``not_evaluated``, never a pass (:func:`gate_status`);
* a run is ok when it evaluated something, did not crash, abort or get interrupted, and every
  ship-blocking invariant was evaluated and never violated (:func:`failures`): ``on_violation``
  decides whether the run stops, the gate decides whether the model ships;
* an early stop (a violated ``on_violation: stop`` invariant, recorded in ``early_stop``) is
  no failure: the invariant reads ``warn``, advisory unless a ship-blocking gate requires it,
  and the run's status is ``early_stop`` (:func:`run_status`).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from traingate.contract.regime import TrainingRegime
from traingate.files import atomic_write_text
from traingate.runtime.evidence import EVIDENCE, VERDICT, RunDirError, jsonable

SCHEMA_VERSION = 3
TRAINGATE_VERSION = importlib.metadata.version("traingate")

Status = Literal["pass", "fail", "warn", "not_evaluated"]
GateStatus = Literal["pass", "warn", "fail", "not_evaluated", "not_applicable", "not_selected"]
Outcome = Literal["pass", "warn", "skip", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "not_evaluated")
Number = int | float  # kept as given: a parameter 50257 stays 50257 in verdict.json


class Evaluation(BaseModel):
    """One kept evaluation of an invariant (its worst or its last): value, limit, where."""

    observed: Number
    limit: Number | None
    comparison: str
    ok: bool
    detail: str
    step: int | None
    epoch: int | None
    metrics: dict[str, Any] = Field(default_factory=dict)


class Violation(BaseModel):
    """The violation that aborted the run, as its ``violation`` evidence event records it."""

    invariant: str
    contract: str
    at: str
    on_violation: str
    observed: Number
    limit: Number | None
    comparison: str
    formula: str | None = None
    evaluated: str | None = None
    detail: str = ""
    hint: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    step: int | None = None
    epoch: int | None = None
    rank: int = 0


class EarlyStop(BaseModel):
    """Why the loop ended early: the first violated ``stop`` invariant, as its
    ``early_stop`` evidence event records it."""

    invariant: str
    reason: str
    step: int | None = None
    epoch: int | None = None


class InvariantRecord(BaseModel):
    """One tracked invariant: its status, tallies and the evaluations kept (worst, last)."""

    status: Status
    ship_blocking: bool = Field(strict=True)
    evaluations: int = Field(strict=True, ge=0)
    violations: int = 0
    contract: str = ""
    title: str = ""
    check: str = ""
    at: str = ""
    on_violation: Literal["abort", "warn", "stop"] = "abort"
    worst: Evaluation | None = None
    last: Evaluation | None = None
    # what the start said it cannot be given (the plan, a supply, a parameter, a reference)
    unevaluable: str | None = None


class GateRecord(BaseModel):
    """One gate of the run's contracts, with the status :func:`gate_status` gave it."""

    status: GateStatus
    contract: str = ""
    requires: list[str] = Field(default_factory=list)
    ship_blocking: bool = False


class Verdict(BaseModel):
    """What ``verdict.json`` holds: the run's identity, every invariant's record, the gates.

    ``schema_version`` 3 is written by this model: ``traingate_version``, ``excluded`` (the
    contract invariants the run's regime excludes), each contract's file ``sha256`` and
    ``evidence_head``, the hash-chain value of the evidence log's last line (2 had neither).
    A file without ``schema_version`` was written before the model and loads as version 1: its
    ``excluded`` is taken from the gates it marked ``not_applicable``; fields it lacks take
    the defaults below.
    """

    schema_version: int = 1
    traingate_version: str | None = None
    contracts: dict[str, str] = Field(default_factory=dict)
    contract_sha256: dict[str, str] = Field(default_factory=dict)
    regime: TrainingRegime | None = None
    params: dict[str, Number] = Field(default_factory=dict)
    only: list[str] | None = None
    world_size: int = 1
    config: dict[str, Any] = Field(default_factory=dict)
    excluded: list[str] = Field(default_factory=list)
    ok: bool = False
    interrupted: str | None = None
    crashed: str | None = None
    evaluations: int = Field(strict=True, ge=0)
    aborted_by: Violation | None = None
    early_stop: EarlyStop | None = None
    last_step: int | None = None
    last_epoch: int | None = None
    invariants: dict[str, InvariantRecord]
    gates: dict[str, GateRecord] = Field(default_factory=dict)
    evidence_head: str | None = None  # the chain value of evidence.jsonl's last line

    def model_post_init(self, context: Any) -> None:
        """A version-1 file's regime exclusions, recovered from its ``not_applicable`` gates."""
        if self.schema_version == 1 and not self.excluded:
            self.excluded = sorted(
                {r for g in self.gates.values() if g.status == "not_applicable" for r in g.requires}
            )

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON values (NaN/inf as strings), as ``verdict.json`` holds it."""
        return jsonable(self.model_dump())

    def to_json(self) -> str:
        """The text of ``verdict.json``."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


# -- the policy ---------------------------------------------------------------------------


def invariant_status(evaluations: int, violations: int, on_violation: str) -> Status:
    """An invariant's status from its tallies and what a violation of it does."""
    if evaluations == 0:
        return "not_evaluated"
    if violations:
        return "fail" if on_violation == "abort" else "warn"
    return "pass"


def gate_status(
    requires: Sequence[str],
    ship_blocking: bool,
    statuses: Mapping[str, Status],
    excluded: Iterable[str],
) -> GateStatus:
    """A gate's status from the statuses of the required invariants the run tracked.

    A gate missing any required invariant is ``not_evaluated``, never a pass; one the run
    tracked none of is ``not_applicable`` (the regime excludes them all) or
    ``not_selected`` (``only=`` left them out).
    """
    present = [statuses[r] for r in requires if r in statuses]
    if not present:
        return "not_applicable" if set(requires) <= set(excluded) else "not_selected"
    if "fail" in present or ("warn" in present and ship_blocking):
        return "fail"
    if "not_evaluated" in present or len(present) < len(requires):
        return "not_evaluated"
    return "warn" if "warn" in present else "pass"


def invariant_outcome(record: InvariantRecord) -> tuple[Outcome, str]:
    """What an invariant means for shipping (``fail`` blocks) and, unless ``pass``, why."""
    violated = f"violated {record.violations} time(s)"
    if record.status == "pass":
        return "pass", ""
    if record.status == "not_evaluated":
        why = (
            f"never evaluated: {record.unevaluable}"
            if record.unevaluable
            else f"never evaluated (no {record.at or 'any'} observation reached it)"
        )
        return ("fail", why) if record.ship_blocking else ("skip", why)
    if record.status == "fail":
        return "fail", f"{violated}; the run aborted"
    if record.ship_blocking:
        kept = "ended the run early" if record.on_violation == "stop" else "kept the run going"
        return "fail", (
            f"{violated} (on_violation: {record.on_violation} {kept}, "
            "but it is required by a ship-blocking gate)"
        )
    if record.on_violation == "stop":
        return "warn", f"{violated}; the run stopped early (advisory)"
    return "warn", f"{violated} (advisory)"


def run_problems(verdict: Verdict) -> list[str]:
    """Why the run as a whole fails, apart from its invariants (empty when it does not)."""
    problems = []
    if verdict.evaluations == 0 or not verdict.invariants:
        problems.append("the run evaluated zero invariants: nothing was checked")
    if verdict.crashed:
        problems.append(f"the run crashed: {verdict.crashed}")
    if verdict.aborted_by is not None:
        a = verdict.aborted_by
        problems.append(f"the run was aborted by {a.invariant}{where(a.step, a.epoch)}: {a.detail}")
    if verdict.interrupted:  # the trainer writes "interrupted by signal N (NAME) at step S"
        how = verdict.interrupted
        problems.append(
            f"the run was {how}"
            if how.startswith("interrupted")
            else f"the run was interrupted: {how}"
        )
    return problems


def failures(verdict: Verdict) -> list[str]:
    """Every reason the run may not ship: run-level problems, then failed invariants."""
    failed = []
    for inv_id, record in verdict.invariants.items():
        outcome, reason = invariant_outcome(record)
        if outcome == "fail":
            failed.append(f"{inv_id}: {reason}")
    return run_problems(verdict) + failed


def run_status(verdict: Verdict) -> Literal["pass", "early_stop", "fail"]:
    """The run in one word: ``fail`` when it may not ship, else ``early_stop`` when a
    ``stop`` invariant ended it early, else ``pass``."""
    if not verdict.ok:
        return "fail"
    return "early_stop" if verdict.early_stop is not None else "pass"


def where(step: int | None, epoch: int | None) -> str:
    """`` at step S, epoch E`` (the parts known), or nothing."""
    parts = [f"{name} {v}" for name, v in (("step", step), ("epoch", epoch)) if v is not None]
    return f" at {', '.join(parts)}" if parts else ""


# -- reading and writing ------------------------------------------------------------------


def write_verdict(run_dir: Path, verdict: Verdict) -> Path:
    """Write ``verdict.json`` atomically (file and folder fsynced)."""
    path = run_dir / VERDICT
    atomic_write_text(path, verdict.to_json())
    return path


def load_verdict(run_dir: str | Path) -> Verdict:
    """``verdict.json`` of ``run_dir``; RunDirError names the file and the flaw."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory")
    path = run_dir / VERDICT
    if not path.is_file():
        hint = (
            " (evidence.jsonl exists: the run crashed before closing, or is still running)"
            if (run_dir / EVIDENCE).is_file()
            else ""
        )
        raise RunDirError(f"{path}: missing{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: corrupt JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: corrupt: expected a JSON object")
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        raise RunDirError(f"{path}: corrupt: {_flaw(exc)}") from None


def _flaw(exc: ValidationError) -> str:
    """The first validation error, phrased by where it is (``invariant X has status 'y'``)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    value = f" {error['input']!r}" if error["type"] != "missing" else ""
    if len(loc) >= 3 and loc[0] in ("invariants", "gates"):
        owner = "invariant" if loc[0] == "invariants" else "gate"
        return f"{owner} {loc[1]} has {'.'.join(loc[2:])}{value or ' missing'} ({error['msg']})"
    return f"`{'.'.join(loc) or 'verdict'}`{value}: {error['msg']}"
