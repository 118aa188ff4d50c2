"""The exception an ``abort`` invariant raises, and the record of one failed evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traingate.checks import Decision
from traingate.errors import TraingateError


class InvariantViolation(TraingateError, RuntimeError):
    """An ``abort`` invariant failed: everything needed to act on it without a debugger."""

    def __init__(self, record: ViolationRecord) -> None:
        self.record = record
        self.invariant_id = record.invariant_id
        self.contract = record.contract
        self.observed = record.decision.observed
        self.limit = record.decision.limit
        self.formula = record.decision.formula
        self.evaluated = record.decision.evaluated
        self.step = record.step
        self.epoch = record.epoch
        self.rank = record.rank
        self.hint = record.hint
        super().__init__(record.message())

    def __reduce__(self) -> tuple[type[InvariantViolation], tuple[ViolationRecord]]:
        return (type(self), (self.record,))


@dataclass(frozen=True)
class ViolationRecord:
    """One failed evaluation: which invariant, where in the run, and the decision."""

    invariant_id: str
    contract: str
    title: str
    at: str
    on_violation: str
    decision: Decision
    step: int | None
    epoch: int | None
    rank: int

    @property
    def hint(self) -> str:
        return self.decision.hint

    def message(self) -> str:
        d = self.decision
        where = ", ".join(
            part
            for part in (
                f"step {self.step}" if self.step is not None else "",
                f"epoch {self.epoch}" if self.epoch is not None else "",
                f"rank {self.rank}",
            )
            if part
        )
        need = f"observed {d.observed:.6g}"
        if d.limit is not None:
            need += f", must be {d.comparison} {d.limit:.6g}"
        elif d.comparison:
            need += f", must be {d.comparison}"
        limit = f"; limit {d.formula} → {d.evaluated}" if d.formula else ""
        hint = f"\n  hint: {d.hint}" if d.hint else ""
        return (
            f"{self.invariant_id} {self.title} ({self.contract}) violated at {self.at}, {where}: "
            f"{d.detail} [{need}{limit}]{hint}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "invariant": self.invariant_id,
            "contract": self.contract,
            "at": self.at,
            "on_violation": self.on_violation,
            "observed": d.observed,
            "limit": d.limit,
            "comparison": d.comparison,
            "formula": d.formula,
            "evaluated": d.evaluated,
            "detail": d.detail,
            "hint": d.hint,
            "metrics": dict(d.metrics),
            "step": self.step,
            "epoch": self.epoch,
            "rank": self.rank,
        }
