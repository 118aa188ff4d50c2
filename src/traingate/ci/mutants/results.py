"""A mutant (what it changes, whether it was killed), the whole run's report, and its text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MutantKind = Literal["formula", "param", "decision", "code"]
Outcome = Literal["pending", "killed", "survived", "error"]
RunPath = Literal["in-process", "fresh"]  # a long-lived worker's pytest, or its own process
REPORTED = ("id", "contract", "kind", "location", "description", "outcome", "detail")


@dataclass(frozen=True)
class ContractEdit:
    """A contract file's mutated text; ``file`` is relative to the project root."""

    file: Path
    text: str


@dataclass(frozen=True)
class ModuleEdit:
    """A check module's mutated source, installed under the module's real name."""

    module: str
    source: str


@dataclass
class Mutant:
    """One small change and whether the contract's falsifiers noticed it."""

    contract: str
    kind: MutantKind
    location: str
    description: str
    edit: ContractEdit | ModuleEdit = field(repr=False)
    # the falsifiers most likely to kill it, run first
    targeted: tuple[str, ...] = field(default=(), repr=False)
    id: str = ""  # ``CONTRACT#n``, given once all of a contract's mutants are made
    outcome: Outcome = "pending"
    detail: str = ""
    # what each path that ran it found (in-process first; not reported)
    verdicts: dict[RunPath, Outcome] = field(default_factory=dict, repr=False, compare=False)

    def decide(self, path: RunPath, outcome: Outcome, detail: str) -> Mutant:
        """Record what ``path`` found; the last path's verdict is the outcome."""
        self.verdicts[path] = outcome
        self.outcome, self.detail = outcome, detail
        return self

    def to_dict(self) -> dict[str, str]:
        """The reported fields (not the edit itself)."""
        return {name: getattr(self, name) for name in REPORTED}


@dataclass
class MutationReport:
    """Every mutant with its outcome, each contract's unmutated run, and the wall time."""

    mutants: list[Mutant] = field(default_factory=list)
    contracts: list[str] = field(default_factory=list)
    baseline_failures: dict[str, str] = field(default_factory=dict)
    invalid_skipped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def score(self, contract: str) -> tuple[int, int]:
        """(killed, total) for one contract."""
        mine = [m for m in self.mutants if m.contract == contract]
        return sum(m.outcome == "killed" for m in mine), len(mine)

    @property
    def ok(self) -> bool:
        """No survivor, no error, and every contract's falsifiers pass unmutated."""
        return not self.baseline_failures and all(m.outcome == "killed" for m in self.mutants)

    def to_dict(self) -> dict[str, Any]:
        """Per-contract scores and every mutant, for ``--format json``."""
        scores = {}
        for c in self.contracts:
            killed, total = self.score(c)
            scores[c] = {
                "killed": killed,
                "total": total,
                "score": killed / total if total else None,
                "baseline_failure": self.baseline_failures.get(c),
                "invalid_skipped": self.invalid_skipped.get(c, 0),
            }
        return {
            "ok": self.ok,
            "wall_s": round(self.wall_s, 2),
            "contracts": scores,
            "mutants": [m.to_dict() for m in self.mutants],
        }


def render_text(report: MutationReport) -> str:
    """Per-contract scores, then each survivor (and error) with its location."""
    lines = []
    for c in report.contracts:
        if c in report.baseline_failures:
            lines.append(f"{c}: falsifiers fail unmutated; mutants not run")
            lines.append(f"  {report.baseline_failures[c]}")
            continue
        killed, total = report.score(c)
        pct = f"{100 * killed / total:.0f} %" if total else "no mutants"
        lines.append(f"{c}: {killed}/{total} mutants killed ({pct})")
        for m in report.mutants:
            if m.contract == c and m.outcome != "killed":
                lines.append(f"  {m.outcome}: {m.id} [{m.kind}] {m.location}: {m.description}")
                if m.detail:
                    lines.append(f"    {m.detail}")
    survived = sum(m.outcome == "survived" for m in report.mutants)
    lines.append(f"{len(report.mutants)} mutants, {survived} survived, {report.wall_s:.1f} s")
    return "\n".join(lines)
