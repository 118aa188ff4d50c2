"""What a pure decision returns and knows: :class:`Decision` and :class:`CheckContext`.

A kind's ``check_<kind>`` function takes plain numbers, its params and a ``CheckContext``
and returns a ``Decision``; the falsifiers call it directly. Nothing here holds state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import ge, gt, le, lt
from typing import Any, NotRequired, TypedDict, Unpack

from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import Resolved, resolve

RELATIONS: dict[str, Callable[[float, float], bool]] = {"<=": le, "<": lt, ">=": ge, ">": gt}
# a passing decision's (observed, limit, comparison, inputs), from ``Check.observe`` (the
# Guard's fast path): the decision itself is ``check.decide_on(inputs)``, built when read
Quick = tuple[float, float | None, str, Any]


class Explanation(TypedDict):
    """What a decision says besides its numbers: ``detail`` (what was measured), ``hint``
    (what to look at when it fails), ``metrics`` (reported, never gated)."""

    detail: str
    hint: NotRequired[str]
    metrics: NotRequired[Mapping[str, float] | None]


@dataclass(frozen=True)
class Decision:
    """One evaluation's conclusion, with everything a violation message needs.

    ``observed`` is the value compared against ``limit`` with ``comparison`` (the relation
    that must hold, e.g. ``"<="``); ``formula``/``evaluated`` describe where the limit came
    from; ``metrics`` carries reported-but-not-gated numbers (e.g. effective rank).
    """

    ok: bool
    observed: float
    limit: float | None
    comparison: str
    detail: str
    hint: str = ""
    formula: str | None = None
    evaluated: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __init__(  # the dataclass's own, without its nine frozen setattr calls (hot path)
        self,
        ok: bool,
        observed: float,
        limit: float | None,
        comparison: str,
        detail: str,
        hint: str = "",
        formula: str | None = None,
        evaluated: str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        fields = {"ok": ok, "observed": observed, "limit": limit, "comparison": comparison}
        fields |= {"detail": detail, "hint": hint, "formula": formula, "evaluated": evaluated}
        fields["metrics"] = {} if metrics is None else metrics
        self.__dict__.update(fields)  # one update: a frozen dataclass, built per evaluation

    @classmethod
    def against(
        cls,
        ok: bool,
        observed: float,
        limit: Resolved,
        comparison: str,
        detail: str,
        hint: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> Decision:
        """A decision against a resolved threshold (keeps its formula and evaluated form)."""
        return cls(
            ok=ok,
            observed=observed,
            limit=limit.value,
            comparison=comparison,
            detail=detail,
            hint=hint,
            formula=limit.formula,
            evaluated=limit.evaluated,
            metrics=dict(metrics or {}),
        )

    @classmethod
    def compare(
        cls, observed: float, comparison: str, limit: Resolved, **why: Unpack[Explanation]
    ) -> Decision:
        """Passes when ``observed <comparison> limit`` holds (NaN never does); the relation
        is the one reported, so the message and the test cannot disagree."""
        ok = RELATIONS[comparison](observed, limit.value)
        return cls.against(ok, observed, limit, comparison, **why)


@dataclass(frozen=True)
class CheckContext:
    """What a check knows about the run: the regime and the run parameter values."""

    regime: Finetune | FromScratch
    values: Mapping[str, float] = field(default_factory=dict)
    # threshold id -> (threshold, its resolution): the regime and values are fixed for the
    # run, so each threshold is evaluated and rendered once, not at every step
    _resolved: dict[int, tuple[Any, Resolved]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def resolve(self, threshold: Any) -> Resolved:
        """Evaluate a threshold field of the params for this run (the one way checks do);
        the first resolution of each threshold object is kept and returned thereafter."""
        hit = self._resolved.get(id(threshold))
        if hit is not None and hit[0] is threshold:
            return hit[1]
        resolved = resolve(threshold, self.regime, self.values)
        if len(self._resolved) >= 64:  # a run binds a few; a shared test context, many
            self._resolved.clear()
        self._resolved[id(threshold)] = (threshold, resolved)
        return resolved

    def symbols(self) -> dict[str, float]:
        """Every symbol a formula may name: the run values, then the regime's own (which win)."""
        return {**self.values, **self.regime.symbols()}
