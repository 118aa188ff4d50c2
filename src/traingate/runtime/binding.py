"""Binding contracts to checks: one :class:`Tracked` check per invariant that applies to the run."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from traingate.checks import REGISTRY, Check, CheckContext, Decision
from traingate.checks.decision import Quick
from traingate.contract.regime import REGIME_NAMES, Finetune, FromScratch
from traingate.contract.schema import Contract, Invariant
from traingate.contract.shipped import load_valid
from traingate.contract.thresholds import iter_formulas
from traingate.runtime.verdict import Status, invariant_status
from traingate.runtime.violation import ViolationRecord

# excess_of: a decision is past its limit by sign × (observed − limit)
EXCESS_SIGN = {"<=": 1.0, "<": 1.0, ">=": -1.0, ">": -1.0}


class _Evaluation:
    """One evaluation as recorded, its entry dict built on first read: a passing step's
    decision is kept, not copied into a dict, unless the verdict, a summary or a
    checkpoint asks for it. A fast pass (:meth:`Check.observe`) keeps only the inputs its
    check decided on; the decision itself is built from them then."""

    __slots__ = ("check", "decision", "entry", "epoch", "inputs", "metrics", "step")

    def __init__(
        self,
        decision: Decision | None,
        step: int | None,
        epoch: int | None,
        check: Check[Any] | None = None,
        inputs: Any = None,
    ) -> None:
        self.decision, self.step, self.epoch = decision, step, epoch
        self.check, self.inputs = check, inputs
        # as it was then, whatever a check does later (a fast pass's inputs are its own)
        self.metrics = dict(decision.metrics) if decision is not None else None
        self.entry: dict[str, Any] | None = None

    def built(self) -> dict[str, Any]:
        if self.entry is None:
            d = self.decision
            if d is None:  # a fast pass: the same pure decision, on the same inputs
                d = self.decision = self.check.decide_on(self.inputs)  # type: ignore[union-attr]
                self.metrics = dict(d.metrics)
            self.entry = {
                "observed": d.observed,
                "limit": d.limit,
                "comparison": d.comparison,
                "ok": d.ok,
                "detail": d.detail,
                "step": self.step,
                "epoch": self.epoch,
                "metrics": self.metrics,
            }
        return self.entry


# what ``Tracked._worst`` / ``._last`` hold: an evaluation, a fast pass's (check, inputs,
# step, epoch), an entry dict restored from a checkpoint, or nothing yet
_Held = _Evaluation | tuple[Any, ...] | dict[str, Any] | None


class _Entry:
    """``Tracked.worst`` / ``.last``: the evaluation held in ``_worst`` / ``_last``, read as
    its entry dict (built then); set to a dict or None, or internally to an evaluation."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.held = f"_{name}"

    def __get__(self, tracked: Any, owner: type | None = None) -> Any:
        if tracked is None:
            return self
        held = getattr(tracked, self.held)
        if type(held) is tuple:  # a fast pass, kept as (check, inputs, step, epoch)
            check, inputs, step, epoch = held
            held = _Evaluation(None, step, epoch, check, inputs)
            setattr(tracked, self.held, held)
        return held.built() if isinstance(held, _Evaluation) else held

    def __set__(self, tracked: Any, value: _Evaluation | dict[str, Any] | None) -> None:
        setattr(tracked, self.held, value)


@dataclass
class Tracked:
    """An invariant bound to its check, with the tallies the verdict reports.

    ``needs`` is the check's ``observes()``, fixed by its params, so it is taken once here
    rather than rebuilt for every invariant at every step. ``worst`` and ``last`` are the
    entries of the worst and the latest evaluation (built when read).
    """

    invariant: Invariant
    contract: Contract
    check: Check[Any]
    evaluations: int = 0
    violations: int = 0
    worst_excess: float = -math.inf
    # optional run parameters its thresholds name that the run did not give: never evaluated
    unbound: tuple[str, ...] = ()
    needs: frozenset[str] = field(init=False)
    limit_name: str = field(init=False)
    _worst: _Held = field(default=None, init=False, repr=False)
    _last: _Held = field(default=None, init=False, repr=False)
    worst = _Entry()
    last = _Entry()

    def __post_init__(self) -> None:
        self.needs = self.check.observes()
        self.limit_name = f"limit/{self.invariant.id}"  # its limit's metrics.parquet name

    def record(self, decision: Decision, step: int | None, epoch: int | None) -> None:
        self.evaluations += 1
        excess = excess_of(decision)
        entry = self._last = _Evaluation(decision, step, epoch)
        if not decision.ok:
            self.violations += 1
        if self._worst is None or excess > self.worst_excess:
            self._worst, self.worst_excess = entry, excess

    def observe(self, obs: Mapping[str, Any]) -> Decision | None:
        """The check's full decision on ``obs`` (``None``: it lacks what the check needs, or
        nothing is decided yet), as every rank must build it before they agree."""
        if not obs.keys() >= self.needs:  # a keys view: membership tests, no set built
            return None
        self.check.observe(obs)
        return self.check.verdict()

    def take(
        self, obs: Mapping[str, Any], step: int | None, epoch: int | None
    ) -> Decision | Quick | None:
        """:meth:`observe` and :meth:`settle` in one call, for one process (a pass needs no
        other rank's word): a pass comes back as the check's :data:`Quick`, settled without
        its decision being built (its entry is built, by the check's pure decision on the
        same inputs, only when read); anything else as the settled decision."""
        if not obs.keys() >= self.needs:
            return None
        quick = self.check.observe(obs)
        if quick is None:
            return self.settle(self.check.verdict(), step, epoch)
        self.evaluations += 1
        observed, limit, comparison, inputs = quick
        entry = self._last = (self.check, inputs, step, epoch)  # read as an _Evaluation
        excess = excess_past(True, observed, limit, comparison)
        if self._worst is None or excess > self.worst_excess:
            self._worst, self.worst_excess = entry, excess
        return quick

    def settle(
        self, decision: Decision | None, step: int | None, epoch: int | None
    ) -> Decision | None:
        """:meth:`record` a decision (if there is one); the decision."""
        if decision is not None:
            self.record(decision, step, epoch)
        return decision

    def violation(
        self, decision: Decision, point: str, step: int | None, epoch: int | None, rank: int
    ) -> ViolationRecord:
        """The record of a failed ``decision`` of this invariant (its hint, if the contract
        gives one, replacing the check's), as the evidence log and the raised error tell it."""
        hint = self.invariant.hint
        return ViolationRecord(
            self.invariant.id,
            self.contract.ref,
            self.invariant.title,
            point,
            self.invariant.on_violation,
            replace(decision, hint=hint) if hint else decision,
            step,
            epoch,
            rank,
        )

    @property
    def status(self) -> Status:
        """pass / fail / warn / not_evaluated, by the verdict's one rule."""
        return invariant_status(self.evaluations, self.violations, self.invariant.on_violation)


def excess_of(d: Decision) -> float:
    """How far past its limit a decision is (positive = violated), for 'worst observation'."""
    return excess_past(d.ok, d.observed, d.limit, d.comparison)


def excess_past(ok: bool, observed: float, limit: float | None, comparison: str) -> float:
    """:func:`excess_of` a decision with these fields (a fast pass has no Decision built)."""
    sign = EXCESS_SIGN.get(comparison)
    if limit is None or sign is None:
        return math.inf if not ok else -math.inf
    if not math.isfinite(observed):
        return math.inf
    return sign * (observed - limit)


def load_contracts(
    paths: Sequence[str | Path] | None, only: Sequence[str] | None = None
) -> tuple[list[Contract], dict[str, str]]:
    """The contract files found under ``paths``, loaded, and each one's sha256 by contract
    id (the verdict records which text gated the run). Without ``paths``: the shipped
    contracts that define ``only``'s ids, or else the ``pretrain`` preset."""
    from traingate.contract.validation import discover

    files = discover([Path(p) for p in paths]) if paths else default_files(only)
    if not files:
        raise ValueError(f"no contract files found in {', '.join(str(p) for p in paths or [])}")
    contracts = [load_valid(f) for f in files]
    digests = {c.contract: file_sha256(f) for c, f in zip(contracts, files, strict=True)}
    return contracts, digests


def default_files(only: Sequence[str] | None) -> list[Path]:
    """No contracts given: the shipped ones defining ``only``'s ids, else the pretrain preset."""
    from traingate.contract.presets import defining, shipped

    return defining(only) if only else shipped()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bind(
    contracts: Sequence[Contract],
    regime: Finetune | FromScratch,
    params: Mapping[str, float],
    only: Sequence[str] | None,
) -> list[Tracked]:
    """Build one check per invariant, with run parameters checked against declarations."""
    tracked: list[Tracked] = []
    wanted = set(only) if only is not None else None
    known = {inv.id for contract in contracts for inv in contract.invariants}
    declared = {name for contract in contracts for name in contract.parameters}
    undeclared = sorted(set(params) - declared)
    if undeclared:
        raise ValueError(
            f"unknown run parameters: {', '.join(undeclared)} "
            f"(declared: {', '.join(sorted(declared)) or 'none'})"
        )
    for contract in contracts:
        values: dict[str, float] = {}
        for name, value in {**params, **regime.symbols()}.items():
            spec = contract.parameters.get(name)
            values[name] = spec.check_value(name, float(value)) if spec else float(value)
        optional = {n for n, spec in contract.parameters.items() if not spec.required}
        for inv in contract.invariants:
            if wanted is not None and inv.id not in wanted:
                continue
            if regime.kind not in inv.regimes:
                continue
            kind = REGISTRY[inv.check]
            unbound = require_symbols(inv, kind, regime, values, optional)
            context = CheckContext(regime, values)
            tracked.append(Tracked(inv, contract, kind(inv.params, context), unbound=unbound))
    if wanted is not None:
        missing = wanted - known
        if missing:
            raise ValueError(f"unknown invariant ids: {', '.join(sorted(missing))}")
    return tracked


def require_symbols(
    inv: Invariant,
    kind: type[Check[Any]],
    regime: Finetune | FromScratch,
    values: Mapping[str, float],
    optional: Collection[str] = (),
) -> tuple[str, ...]:
    """Fail at construction, not mid-run, when a threshold names a parameter with no value;
    the ``optional`` ones (declared ``required: false``) missing are returned instead."""
    other = {name for name in REGIME_NAMES if name != regime.kind}
    metrics = kind.metric_symbols(inv.params)  # type: ignore[arg-type]
    unbound: set[str] = set()
    for path, formula in iter_formulas(inv.params):
        if other & {str(p) for p in path}:
            continue  # the other regime's threshold
        missing = formula.symbols() - metrics - set(values)
        required = sorted(missing - set(optional))
        if required:
            raise ValueError(
                f"{inv.id}: `{formula.source}` needs {', '.join(required)}: pass it in params="
            )
        unbound |= missing
    return tuple(sorted(unbound))
