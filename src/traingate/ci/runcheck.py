"""Gate a finished run in CI: read a run dir's verdict and evidence, decide, render.

A run passes only when it evaluated at least one invariant, did not crash or abort, and
every ship-blocking invariant was evaluated and never violated. ``not_evaluated`` is never
a pass, and a ``warn`` violation of a ship-blocking invariant fails too: ``on_violation``
decides whether the run stops, the gate decides whether the model ships.

The decision is recomputed from the per-invariant records, not copied from the verdict's
``ok`` (a verdict that says ``ok: false`` for a reason not found here still fails).
The renderers (text, JSON, GitHub annotations, JUnit XML) are in :mod:`traingate.ci.render`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traingate.runtime.evidence import EVIDENCE, VERDICT, read_evidence
from traingate.runtime.policy import gate_status

STATUSES = ("pass", "fail", "warn", "not_evaluated")
AUDIT = "audit.json"


class RunDirError(Exception):
    """The run dir or its verdict cannot be read: a usage error (exit 2), not a failed run."""


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
        return {
            "id": self.id,
            "title": self.title,
            "contract": self.contract,
            "check": self.check,
            "at": self.at,
            "status": self.status,
            "ship_blocking": self.ship_blocking,
            "evaluations": self.evaluations,
            "violations": self.violations,
            "worst": self.worst,
            "first_violation": self.first_violation,
            "outcome": self.outcome,
            "reason": self.reason,
        }


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
        return {
            "id": self.id,
            "contract": self.contract,
            "requires": list(self.requires),
            "ship_blocking": self.ship_blocking,
            "status": self.status,
            "verdict_status": self.verdict_status,
        }


@dataclass
class RunCheck:
    """The CI decision on one run dir: ``exit_code`` 0 (ok) or 1 (failures)."""

    run_dir: Path
    verdict: dict[str, Any]
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
        return {
            "run_dir": str(self.run_dir),
            "ok": self.ok,
            "exit_code": self.exit_code,
            "failures": self.failures,
            "problems": self.problems,
            "notes": self.notes,
            "contracts": self.verdict.get("contracts", {}),
            "regime": self.verdict.get("regime"),
            "params": self.verdict.get("params", {}),
            "evaluations": self.verdict.get("evaluations"),
            "aborted_by": self.verdict.get("aborted_by"),
            "crashed": self.verdict.get("crashed"),
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


def load_verdict(run_dir: Path) -> dict[str, Any]:
    """``verdict.json`` of ``run_dir``, shape-checked; RunDirError names the file and the flaw."""
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
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: corrupt JSON at line {exc.lineno}: {exc.msg}") from None
    _check_shape(path, verdict)
    return verdict


def _check_shape(path: Path, verdict: Any) -> None:
    if not isinstance(verdict, dict):
        raise RunDirError(f"{path}: corrupt: expected a JSON object")
    invariants = verdict.get("invariants")
    if not isinstance(invariants, dict):
        raise RunDirError(f"{path}: corrupt: no `invariants` object")
    if not isinstance(verdict.get("evaluations"), int):
        raise RunDirError(f"{path}: corrupt: `evaluations` is not an integer")
    if not isinstance(verdict.get("gates", {}), dict):
        raise RunDirError(f"{path}: corrupt: `gates` is not an object")
    for inv_id, record in invariants.items():
        if not isinstance(record, dict):
            raise RunDirError(f"{path}: corrupt: invariant {inv_id} is not an object")
        if record.get("status") not in STATUSES:
            raise RunDirError(
                f"{path}: corrupt: invariant {inv_id} has status {record.get('status')!r} "
                f"(expected one of {', '.join(STATUSES)})"
            )
        if not isinstance(record.get("ship_blocking"), bool):
            raise RunDirError(f"{path}: corrupt: invariant {inv_id} has no boolean ship_blocking")
        if not isinstance(record.get("evaluations"), int):
            raise RunDirError(f"{path}: corrupt: invariant {inv_id} has no integer evaluations")


def load_events(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Evidence events (a torn last line is skipped) and notes about what is missing."""
    path = run_dir / EVIDENCE
    if not path.is_file():
        return [], [f"{path} is missing: violations come from verdict.json alone"]
    try:
        events = list(read_evidence(path))
    except ValueError as exc:
        raise RunDirError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    notes = []
    if not any(e.get("event") == "end" for e in events):
        notes.append(f"{path} has no end event (its last line is missing or torn)")
    return events, notes


def _outcome(status: str, ship_blocking: bool, violations: int, at: str) -> tuple[str, str]:
    if status == "pass":
        return "pass", ""
    if status == "not_evaluated":
        why = f"never evaluated (no {at} observation reached it)"
        return ("fail", why) if ship_blocking else ("skip", why)
    if status == "fail":
        return "fail", f"violated {violations} time(s); the run aborted"
    if ship_blocking:
        return "fail", (
            f"violated {violations} time(s) (on_violation: warn kept the run going, "
            "but it is required by a ship-blocking gate)"
        )
    return "warn", f"violated {violations} time(s) (advisory)"


def check_run(run_dir: str | Path) -> RunCheck:
    """Decide whether the run in ``run_dir`` may ship. Raises RunDirError when unreadable."""
    run_dir = Path(run_dir)
    verdict = load_verdict(run_dir)
    events, notes = load_events(run_dir)
    audit = _load_audit(run_dir, notes)
    return judge_verdict(verdict, run_dir, events, notes, audit)


def judge_verdict(
    verdict: Mapping[str, Any],
    run_dir: Path,
    events: Sequence[Mapping[str, Any]] = (),
    notes: list[str] | None = None,
    audit: dict[str, Any] | None = None,
) -> RunCheck:
    """The ship decision for a verdict already in hand (``check_run`` reads one from disk)."""
    notes = notes if notes is not None else []
    first_violation: dict[str, dict[str, Any]] = {}
    crashed_events = []
    for event in events:
        if event.get("event") in ("violation", "warning"):
            first_violation.setdefault(str(event.get("invariant")), event)
        if event.get("event") == "end" and event.get("crashed"):
            crashed_events.append(str(event["crashed"]))
    invariants = []
    for inv_id, rec in verdict["invariants"].items():
        status, blocking = rec["status"], rec["ship_blocking"]
        violations = int(rec.get("violations") or 0)
        outcome, reason = _outcome(status, blocking, violations, str(rec.get("at", "any")))
        invariants.append(
            InvariantResult(
                id=inv_id,
                title=str(rec.get("title", "")),
                contract=str(rec.get("contract", "")),
                check=str(rec.get("check", "")),
                at=str(rec.get("at", "")),
                status=status,
                ship_blocking=blocking,
                evaluations=rec["evaluations"],
                violations=violations,
                worst=rec.get("worst"),
                first_violation=first_violation.get(inv_id),
                outcome=outcome,
                reason=reason,
            )
        )
    statuses = {inv.id: inv.status for inv in invariants}
    gates = []
    for gate_id, rec in verdict.get("gates", {}).items():
        requires = tuple(str(r) for r in rec.get("requires", []))
        blocking = bool(rec.get("ship_blocking"))
        present = [statuses[r] for r in requires if r in statuses]
        gates.append(
            GateResult(
                id=gate_id,
                contract=str(rec.get("contract", "")),
                requires=requires,
                ship_blocking=blocking,
                status=gate_status(
                    present,
                    ship_blocking=blocking,
                    required=len(requires),
                    unmatched="not_applicable"
                    if rec.get("status") == "not_applicable"
                    else "not_selected",
                ),
                verdict_status=rec.get("status"),
            )
        )
    problems = []
    if verdict["evaluations"] == 0 or not invariants:
        problems.append("the run evaluated zero invariants: nothing was checked")
    crashed = verdict.get("crashed") or (crashed_events[-1] if crashed_events else None)
    if crashed:
        problems.append(f"the run crashed: {crashed}")
    aborted = verdict.get("aborted_by")
    if isinstance(aborted, dict):
        where = location_of(aborted)
        problems.append(
            f"the run was aborted by {aborted.get('invariant')}{where}: {aborted.get('detail', '')}"
        )
    if audit and audit.get("stopped_at"):
        stop = audit["stopped_at"]
        notes.append(
            f"the audit replay of {audit.get('source')} stopped at row {stop.get('row')}"
            f" ({stop.get('invariant')} aborted)"
        )
    check = RunCheck(
        run_dir, dict(verdict), list(events), invariants, gates, problems, notes, audit
    )
    if verdict.get("ok") is False and check.ok:
        problems.append("verdict.json says ok: false")
    return check


def location_of(record: Mapping[str, Any]) -> str:
    parts = [f"{key} {record[key]}" for key in ("step", "epoch") if record.get(key) is not None]
    return f" at {', '.join(parts)}" if parts else ""


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
