"""Up-front honesty: which bound invariants a planned run is too short to evaluate.

A healthy 60-step run used to exit 3 because INV-TRAIN-003 (``loss_spike``, a 100-loss
window) was never evaluated, and nothing said so until the verdict. Each kind declares how
many observations at its point it takes to decide (:meth:`Check.first_decision`) and the
loop step before which it decides nothing (:meth:`Check.first_step`); :func:`unevaluable`
holds those against the plan (``max_steps`` steps, ``max_validations`` validations, one
final point) before the first step. Pure: it reads the bound checks and changes nothing.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from traingate.runtime.binding import Tracked
from traingate.runtime.events import EventStream

log = logging.getLogger("traingate")


class UnevaluableWarning(UserWarning):
    """A bound invariant the run's plan cannot evaluate (see :func:`unevaluable`)."""


# What a plan gives each point: the final point is evaluated once, whatever the plan.
FINAL_EVALUATIONS = 1


class Said(ABC):
    """A planning finding about one invariant; its string is its one-line ``message``."""

    invariant_id: str
    kind: str

    @property
    @abstractmethod
    def reason(self) -> str:
        """What it needs and why the run cannot give it (a verdict record keeps this)."""

    @property
    def message(self) -> str:
        """One readable line: the invariant, then its :attr:`reason`."""
        return f"{self.invariant_id} ({self.kind}) {self.reason}"

    def __str__(self) -> str:
        return self.message


def reasons(items: Sequence[Said]) -> dict[str, str]:
    """Each unevaluable invariant's first reason, by id, for its verdict record."""
    found: dict[str, str] = {}
    for item in items:
        found.setdefault(item.invariant_id, item.reason)
    return found


@dataclass(frozen=True)
class Unevaluable(Said):
    """An invariant the plan cannot evaluate, and why.

    ``needed`` is how many observations at its point ``at`` it takes to decide (its first
    decision comes with the ``needed``-th), or, when ``from_step`` is set, the loop step
    from which its validations are judged; ``planned`` is what the run plans of the same.
    """

    invariant_id: str
    kind: str
    at: str
    needed: int
    planned: int
    from_step: bool = False

    @property
    def reason(self) -> str:
        """What it needs and what the run plans."""
        if self.from_step:
            return (
                f"judges validations from step {self.needed} on; "
                f"the run plans {_count(self.planned, 'step')}"
            )
        if self.at == "final":
            return (
                f"needs {_count(self.needed, 'evaluation')} for its first decision; "
                "the final point is evaluated once"
            )
        if self.needed == 1:
            return f"needs a {self.at} to decide; the run plans none"
        return (
            f"needs {_count(self.needed - 1, self.at)} before its first decision; "
            f"the run plans {self.planned}"
        )


@dataclass(frozen=True)
class Unsupplied(Said):
    """An invariant needing observations the loop (or integration) says it never supplies."""

    invariant_id: str
    kind: str
    missing: tuple[str, ...]
    any_of: bool = False  # the kind needs one of ``missing``, and none is supplied
    demanded: bool = False  # ``missing`` are demanded (Check.demands): every point violates

    @property
    def reason(self) -> str:
        """What it would need, and what its absence means."""
        names = (" or " if self.any_of else ", ").join(self.missing)
        outcome = (
            "each of its points will violate it" if self.demanded else "it will not be evaluated"
        )
        return f"needs {names}, which this loop never supplies: {outcome}"


@dataclass(frozen=True)
class Unbound(Unsupplied):
    """An invariant whose threshold names optional run parameters the run did not give."""

    @property
    def reason(self) -> str:
        """The parameters it would need."""
        return (
            f"needs the run parameter {', '.join(self.missing)}, which params= does not give: "
            "it will not be evaluated"
        )


def unbound(tracked: Sequence[Tracked]) -> list[Unbound]:
    """The invariants of ``tracked`` left unbound by a missing optional run parameter."""
    return [Unbound(t.invariant.id, t.invariant.check, t.unbound) for t in tracked if t.unbound]


def unsupplied(tracked: Sequence[Tracked], supplies: Collection[str]) -> list[Unsupplied]:
    """The invariants of ``tracked`` that need an observation outside ``supplies`` (what an
    integration feeds the Guard: e.g. loss, grad_norm and val_loss, but no predictions)."""
    given = set(supplies) | {"step", "epoch"}
    found: list[Unsupplied] = []
    for t in tracked:
        missing = tuple(sorted(t.needs - given))
        either = t.check.observes_any()
        demanded = tuple(sorted(t.check.demands() - given))
        if missing:
            found.append(Unsupplied(t.invariant.id, t.invariant.check, missing))
        elif either and not either & given:
            found.append(Unsupplied(t.invariant.id, t.invariant.check, tuple(sorted(either)), True))
        elif demanded:
            found.append(Unsupplied(t.invariant.id, t.invariant.check, demanded, demanded=True))
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def unevaluable(
    tracked: Sequence[Tracked],
    *,
    max_steps: int | None = None,
    max_validations: int | None = None,
) -> list[Unevaluable]:
    """The invariants of ``tracked`` that a run of ``max_steps`` steps and
    ``max_validations`` validations cannot evaluate, in ``tracked``'s order.

    ``None`` means the plan does not say: nothing is flagged for that point. A final-point
    invariant gets one evaluation, so only a kind needing more is flagged there. A
    validation carries the loop's step (at most ``max_steps``), so an invariant judged
    from a later step is flagged too.
    """
    for name, value in (("max_steps", max_steps), ("max_validations", max_validations)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be at least 0, got {value}")
    planned = {"step": max_steps, "validation": max_validations, "final": FINAL_EVALUATIONS}
    found: list[Unevaluable] = []
    for t in tracked:
        inv, kind = t.invariant, type(t.check)
        point = planned[inv.at]
        needed = kind.first_decision(t.check.params)
        if point is not None and needed > point:
            found.append(Unevaluable(inv.id, inv.check, inv.at, needed, point))
            continue
        first_step = kind.first_step(t.check.params)
        if max_steps is not None and first_step > max_steps:
            found.append(Unevaluable(inv.id, inv.check, inv.at, first_step, max_steps, True))
    return found


def announce(
    items: Sequence[Unevaluable | Unsupplied],
    events: EventStream,
    max_steps: int | None,
    max_validations: int | None,
) -> None:
    """Say at start what the plan cannot evaluate: one :class:`UnevaluableWarning` each (an
    info line for an :class:`Unbound` one: its parameter is declared optional, so leaving it
    out is a choice, not a mistake), and one ``unevaluable`` evidence event listing them all."""
    for item in items:
        if isinstance(item, Unbound):
            log.info("traingate: %s", item.message)
        else:
            warnings.warn(item.message, UnevaluableWarning, stacklevel=3)
    if items:
        events.write(
            "unevaluable",
            max_steps=max_steps,
            max_validations=max_validations,
            invariants=[
                {
                    "invariant": u.invariant_id,
                    **(
                        {"needed": u.needed, "planned": u.planned}
                        if isinstance(u, Unevaluable)
                        else {"missing": list(u.missing)}
                    ),
                    "message": u.message,
                    "reason": u.reason,
                }
                for u in items
            ],
        )
