"""Gate a finished run in CI: read a run dir's verdict and evidence, decide, render.

A run passes only when it evaluated at least one invariant, did not crash or abort, and
every ship-blocking invariant was evaluated and never violated. ``not_evaluated`` is never
a pass, and a ``warn`` violation of a ship-blocking invariant fails too: ``on_violation``
decides whether the run stops, the gate decides whether the model ships.

Nothing ``verdict.json`` says is taken on trust: the verdict is re-derived from the
hash-chained evidence (:mod:`traingate.ci.derive`) and judged with the one policy
(:mod:`traingate.runtime.verdict`); each disagreement is a failure that names it.
The renderers (text, JSON, GitHub annotations, JUnit XML) are in :mod:`traingate.ci.render`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traingate.ci.derive import ExpectedContract, derive, expected_contracts
from traingate.runtime.evidence import RunDirError
from traingate.runtime.verdict import (
    Verdict,
    gate_status,
    invariant_outcome,
    load_verdict,
    run_problems,
    run_status,
    where,
)

__all__ = [
    "AUDIT",
    "GateResult",
    "InvariantResult",
    "RunCheck",
    "RunDirError",
    "check_against",
    "check_run",
    "describe_decision",
    "fmt_number",
    "judge_verdict",
    "location_of",
]

AUDIT = "audit.json"


@dataclass(frozen=True)
class InvariantResult:
    """One invariant of the verdict, with the CI outcome derived from it.

    ``outcome`` is ``fail`` (blocks the run), ``skip`` (not evaluated, advisory),
    ``warn`` (violated, advisory) or ``pass``; ``reason`` says why when it is not ``pass``.
    """

    id: str
    title: str
    contract: str
    check: str
    at: str
    status: str
    ship_blocking: bool
    evaluations: int
    violations: int
    worst: Mapping[str, Any] | None
    first_violation: Mapping[str, Any] | None
    outcome: str
    reason: str

    def worst_text(self) -> str:
        """``observed cmp limit`` of the worst evaluation, e.g. ``10.8 (must be <= 10)``."""
        return describe_decision(self.worst) if self.worst else "—"

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain data."""
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    """A gate with its status derived from the invariants this run tracked.

    ``not_applicable`` when the regime excludes every required invariant, ``not_selected``
    when the run tracked none of them for another reason (``--only``).
    """

    id: str
    contract: str
    requires: tuple[str, ...]
    ship_blocking: bool
    status: str
    verdict_status: str | None

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain data (``requires`` as a list)."""
        return {**asdict(self), "requires": list(self.requires)}


@dataclass
class RunCheck:
    """The CI decision on one run dir: ``exit_code`` 0 (ok) or 1 (failures)."""

    run_dir: Path
    verdict: Verdict
    events: list[dict[str, Any]]
    invariants: list[InvariantResult]
    gates: list[GateResult]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit: dict[str, Any] | None = None

    @property
    def failures(self) -> list[str]:
        """Every reason the run fails: run-level problems, then failed invariants."""
        return self.problems + [
            f"{inv.id}: {inv.reason}" for inv in self.invariants if inv.outcome == "fail"
        ]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        """Everything the decision used, as plain JSON values."""
        verdict = self.verdict.to_dict()
        return {
            "run_dir": str(self.run_dir),
            "ok": self.ok,
            "status": run_status(self.verdict) if self.ok else "fail",
            "exit_code": self.exit_code,
            "failures": self.failures,
            "problems": self.problems,
            "notes": self.notes,
            "contracts": verdict["contracts"],
            "regime": verdict["regime"],
            "params": verdict["params"],
            "evaluations": verdict["evaluations"],
            "aborted_by": verdict["aborted_by"],
            "early_stop": verdict["early_stop"],
            "crashed": verdict["crashed"],
            "audit": self.audit,
            "invariants": [inv.to_dict() for inv in self.invariants],
            "gates": [g.to_dict() for g in self.gates],
        }


def describe_decision(entry: Mapping[str, Any]) -> str:
    """A recorded decision as ``observed (must be CMP limit)``, tolerant of NaN strings."""
    observed = fmt_number(entry.get("observed"))
    comparison = entry.get("comparison") or ""
    limit = entry.get("limit")
    if limit is not None:
        return f"{observed} (must be {comparison} {fmt_number(limit)})"
    return f"{observed} (must be {comparison})" if comparison else observed


def fmt_number(value: Any) -> str:
    """A number in 6 significant digits; NaN/inf (floats or JSON strings) as written."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.6g}" if math.isfinite(value) else str(float(value))
    return str(value)


def check_run(run_dir: str | Path, contracts: Sequence[Path] = ()) -> RunCheck:
    """Decide whether the run in ``run_dir`` may ship, on the verdict re-derived from its
    evidence (:mod:`traingate.ci.derive`): every way ``verdict.json`` disagrees with it is a
    failure. With ``contracts`` (files or folders), the run must have been gated by each of
    them, in the same version and text. Raises RunDirError when the run dir is unreadable."""
    run_dir = Path(run_dir)
    claimed = load_verdict(run_dir)
    expected = expected_contracts(contracts) if contracts else []
    return check_against(run_dir, claimed, expected, require_all=bool(contracts))


def check_against(
    run_dir: Path,
    claimed: Verdict,
    expected: Sequence[ExpectedContract],
    *,
    require_all: bool = False,
) -> RunCheck:
    """:func:`check_run` with the verdict loaded and the expected contracts read."""
    derived = derive(run_dir, claimed, expected, require_all=require_all)
    notes = list(derived.notes)
    audit = _load_audit(run_dir, notes)
    check = judge_verdict(derived.verdict or claimed, run_dir, derived.events, notes, audit)
    check.problems.extend(derived.problems)
    return check


def judge_verdict(
    verdict: Verdict | Mapping[str, Any],
    run_dir: Path,
    events: Sequence[Mapping[str, Any]] = (),
    notes: list[str] | None = None,
    audit: dict[str, Any] | None = None,
) -> RunCheck:
    """The ship decision for a verdict already in hand (``check_run`` reads one from disk);
    a mapping (e.g. ``Guard.close()``'s) is validated into a :class:`Verdict` first."""
    if not isinstance(verdict, Verdict):
        verdict = Verdict.model_validate(verdict)
    notes = notes if notes is not None else []
    first_violation: dict[str, Mapping[str, Any]] = {}
    crashed_events = []
    for event in events:
        if event.get("event") in ("violation", "warning"):
            first_violation.setdefault(str(event.get("invariant")), event)
        if event.get("event") == "end" and event.get("crashed"):
            crashed_events.append(str(event["crashed"]))
    plain = verdict.to_dict()
    invariants = []
    for inv_id, rec in verdict.invariants.items():
        outcome, reason = invariant_outcome(rec)
        invariants.append(
            InvariantResult(
                id=inv_id,
                title=rec.title,
                contract=rec.contract,
                check=rec.check,
                at=rec.at,
                status=rec.status,
                ship_blocking=rec.ship_blocking,
                evaluations=rec.evaluations,
                violations=rec.violations,
                worst=plain["invariants"][inv_id]["worst"],
                first_violation=first_violation.get(inv_id),
                outcome=outcome,
                reason=reason,
            )
        )
    statuses = {inv_id: rec.status for inv_id, rec in verdict.invariants.items()}
    gates = [
        GateResult(
            id=gate_id,
            contract=rec.contract,
            requires=tuple(rec.requires),
            ship_blocking=rec.ship_blocking,
            status=gate_status(rec.requires, rec.ship_blocking, statuses, verdict.excluded),
            verdict_status=rec.status,
        )
        for gate_id, rec in verdict.gates.items()
    ]
    if crashed_events and not verdict.crashed:  # the end event saw a crash the verdict missed
        verdict = verdict.model_copy(update={"crashed": crashed_events[-1]})
    problems = run_problems(verdict)
    if verdict.early_stop is not None:  # no failure: said once, where the run ended
        early = verdict.early_stop
        notes.append(
            f"the run stopped early{where(early.step, early.epoch)}: "
            f"{early.invariant}: {early.reason}"
        )
    if audit and audit.get("stopped_at"):
        stop = audit["stopped_at"]
        notes.append(
            f"the audit replay of {audit.get('source')} stopped at row {stop.get('row')}"
            f" ({stop.get('invariant')} aborted)"
        )
    check = RunCheck(run_dir, verdict, list(events), invariants, gates, problems, notes, audit)
    if not verdict.ok and check.ok:
        problems.append("verdict.json says ok: false")
    return check


def location_of(record: Mapping[str, Any]) -> str:
    """`` at step S, epoch E`` of an evidence event (the parts it records), or nothing."""
    return where(record.get("step"), record.get("epoch"))


def _load_audit(run_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    path = run_dir / AUDIT
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{path} is unreadable ({exc}); audit provenance not shown")
        return None
    return data if isinstance(data, dict) else None
