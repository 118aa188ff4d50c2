"""The shape every invariant kind takes: a params model, a pure decision, a stateful check.

Like a torchmetrics ``Metric``: ``update()`` folds observations into state, ``verdict()``
decides, ``reset()`` clears. The decision itself lives in a pure function of plain numbers
that the falsifiers call directly, so the code that runs is the code that is tested. A kind
declares its state once, as a dataclass (``state``, as torchmetrics' ``add_state``); the
base class gives ``reset``, ``state_dict`` and ``load_state_dict`` from it.

Modules under ``traingate.checks`` must import without torch (``contracts validate`` loads
them to validate params); anything that needs tensors imports torch inside the method.

Observation names a loop hands the Guard (a check lists what it ``requires``):
  step point:        step, loss, grad_norm, components (name → value), weights, lr, and any
                     extra scalar metrics (e.g. tokens_per_sec)
  validation point:  epoch, val_loss, val_components, predictions, labels, probabilities,
                     embeddings, groups, and extra scalar metrics
  final point:       everything last seen, plus extra scalar metrics
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import TypeAdapter

from traingate.checks.decision import CheckContext, Decision, Quick
from traingate.contract.kinds import KINDS, At, CheckParams

Observation = Mapping[str, Any]
__all__ = [
    "At",
    "Check",
    "CheckParams",
    "LatestCheck",
    "LatestScalars",
    "LimitDrawing",
    "NoState",
    "Observation",
    "Quick",
    "ScalarCheck",
    "non_finite",
    "own_params",
    "present_scalars",
    "register",
    "scalar_names",
    "unique_names",
]


P = TypeVar("P", bound=CheckParams)
PM = TypeVar("PM", bound=CheckParams)
_PENDING: Any = object()  # a Check's verdict after a fast pass: decided when first read


@dataclass(frozen=True)
class LimitDrawing:
    """How the report draws a kind's limit: the curve it bounds and where the limit applied.

    ``constant``: one number for the run. ``moving``: a new limit at nearly every
    evaluation (e.g. a multiple of a running mean), drawn as one thin line through them
    with a one-line legend. ``once``: decided on the first observation only, so drawn at
    that point alone. ``mirror``: the name of a decision metric the limit is symmetric
    about; the other side of the band is ``2 · metrics[mirror] − limit`` (a two-sided
    bound whose decision records only the nearer side).
    """

    quantity: str  # "loss" (step loss), "val_loss", "grad_norm" or "component_shares"
    constant: bool = False
    moving: bool = False
    once: bool = False
    mirror: str | None = None


@dataclass
class NoState:
    """The state of a kind that keeps nothing across checkpoints."""


@dataclass
class LatestScalars:
    """The state of a kind that decides on the latest observation alone: its named scalars
    (``None`` before the first update)."""

    last: dict[str, float] | None = None


def present_scalars(observation: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """The scalars among ``names`` that ``observation`` carries (absent or ``None`` skipped)."""
    return {n: float(v) for n in names if (v := observation.get(n)) is not None}


def non_finite(values: Mapping[str, float]) -> list[str]:
    """The names whose value is NaN or infinite, in order."""
    return [n for n, v in values.items() if not math.isfinite(v)]


GROUPS = frozenset({"components", "weights"})  # step observations that are dicts of scalars


def unique_names(names: list[str]) -> list[str]:
    """A params validator: ``names`` as given, or a ValueError naming those listed twice."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"observations are listed twice: {', '.join(duplicates)}")
    return names


def scalar_names(names: list[str]) -> list[str]:
    """A params validator: ``names``, unique, none of them a group of values (``GROUPS``)."""
    grouped = [n for n in names if n in GROUPS]
    if grouped:
        raise ValueError(f"{', '.join(grouped)}: a group of values, not a scalar observation")
    return unique_names(names)


def own_params(params: CheckParams, model: type[PM]) -> PM:
    """``params`` as a kind's own params ``model`` (a kind's classmethods take any params);
    another kind's params are a TypeError."""
    if not isinstance(params, model):
        raise TypeError(f"expected {model.__name__}, got {type(params).__name__}")
    return params


@cache
def _adapter(state: type[Any]) -> TypeAdapter[Any]:
    return TypeAdapter(state)


def _plain(value: Any) -> Any:
    """A state value as plain JSON-able containers: dataclasses → dicts, sequences → lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | deque):
        return [_plain(v) for v in value]
    return value


class Check(ABC, Generic[P]):
    """A stateful evaluator of one invariant kind.

    Class attributes declare the kind: its registry name, its params model, the points
    (``at:``) where it may run, the observations it needs, its ``state`` dataclass, how the
    report draws its limit, and how state crosses ranks: ``gather`` names observation fields
    concatenated across ranks before ``update`` (like torchmetrics' ``dist_reduce_fx="cat"``);
    verdicts reduce with "any rank violated".

    A kind's ``update`` folds an observation into ``self.values`` (an instance of ``state``)
    and calls :meth:`refresh`; its ``decide`` reads only ``self.values``, so a check loaded
    from a ``state_dict`` gives the very verdict the saved one gave.
    """

    kind: ClassVar[str]
    params_model: ClassVar[type[CheckParams]]
    points: ClassVar[frozenset[str]]
    requires: ClassVar[frozenset[str]] = frozenset()
    gather: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    state: ClassVar[type[Any]] = NoState
    drawing: ClassVar[LimitDrawing | None] = None

    def __init__(self, params: P, context: CheckContext) -> None:
        self.params = params
        self.context = context
        self.reset()

    @classmethod
    def metric_symbols(cls, params: CheckParams) -> frozenset[str]:
        """Formula symbols that name observations rather than run parameters."""
        return frozenset()

    @classmethod
    def limit_label(cls, x: float) -> str:
        """The report's legend for this kind's limit at ``x`` (a step or an epoch)."""
        del x
        return "limit"

    @classmethod
    def own(cls, params: CheckParams) -> P:
        """``params`` as this kind's ``params_model`` (a kind's classmethods take any params);
        another kind's params are a TypeError."""
        return own_params(params, cls.params_model)  # type: ignore[return-value]

    @classmethod
    def first_decision(cls, params: CheckParams) -> int:
        """How many observations at its point (``at:``) this kind, given ``params``, takes
        to decide: the first decision comes with that observation, never before (default 1,
        the first one). A run planning fewer leaves the invariant unevaluated."""
        del params
        return 1

    @classmethod
    def first_step(cls, params: CheckParams) -> int:
        """The loop step before which this kind, given ``params``, decides nothing whatever
        it observes (default 0: no such bound)."""
        del params
        return 0

    def observes(self) -> frozenset[str]:
        """Observations this invariant needs, given its params (default: ``requires``).

        The Guard evaluates an invariant only at points that provide all of them, so a
        missing observation reads "not evaluated", never a crash or a silent pass.
        """
        return self.requires

    def observes_any(self) -> frozenset[str]:
        """Observations of which at least one must be present (empty: no such need)."""
        return frozenset()

    def demands(self) -> frozenset[str]:
        """Observations whose absence is itself a violation, not a reason to skip (e.g.
        ``metrics_present``): a loop that never supplies one violates it at every point."""
        return frozenset()

    @abstractmethod
    def update(self, observation: Observation) -> None:
        """Fold one observation into the state, then :meth:`refresh` the verdict."""

    @abstractmethod
    def decide(self) -> Decision | None:
        """Decide on ``self.values`` alone; ``None`` when there is nothing to decide yet."""

    def refresh(self) -> Decision | None:
        """Recompute the verdict from the state (after an update, a load or a reset)."""
        self._decision = self.decide()
        return self._decision

    def verdict(self) -> Decision | None:
        """The decision on the state so far; ``None`` when there is nothing to decide yet
        (after an :meth:`observe` that passed, built now from the state)."""
        decision = self._decision
        if decision is _PENDING:
            decision = self._decision = self.decide()
        return decision  # type: ignore[return-value]

    def observe(self, observation: Observation) -> Quick | None:
        """:meth:`update`, and when the decision surely passes, its ``(observed, limit,
        comparison, inputs)`` without building it (the Guard's per-step fast path; the
        decision is ``decide_on(inputs)``, built when a record needs it). ``None``: the
        verdict is :meth:`verdict`'s, a decision that may fail, or nothing to decide.

        A kind's override takes every comparison from the top-level functions its pure
        decision calls, so the two cannot disagree (tests/checks/test_fast_path.py)."""
        self.update(observation)
        return None

    def passed(self, observed: float, limit: float | None, comparison: str, inputs: Any) -> Quick:
        """What :meth:`observe` returns on a pass; the verdict is built only when read."""
        self._decision = _PENDING
        return observed, limit, comparison, inputs

    def decide_on(self, inputs: Any) -> Decision | None:
        """The pure decision on the inputs :meth:`observe` returned (a kind with a fast
        path defines it; :meth:`decide` is this on the state's latest inputs)."""
        raise NotImplementedError(f"{self.kind} has no fast path")

    def reset(self) -> None:
        """Forget all state (a new run): a fresh instance of ``state``."""
        self.values = self.state()
        self.refresh()

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for exact resume from a checkpoint: ``state``'s fields by name."""
        return _plain(self.values)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Become a fresh check holding what :meth:`state_dict` returned (jsonable's
        "nan"/"inf" strings read as floats); the verdict is recomputed from it."""
        expected = sorted(f.name for f in fields(self.state))
        if sorted(state) != expected:
            raise ValueError(f"{self.kind} state has keys {sorted(state)}, expected {expected}")
        values = _adapter(self.state).validate_python(dict(state))
        self.reset()
        self.values = values
        self.refresh()


class LatestCheck(Check[P]):
    """A kind whose state keeps its latest decision's inputs in ``last`` (``None``: the
    latest update had nothing to decide); :meth:`decide` applies :meth:`decide_on` to them.

    By default that is the kind's pure ``decision`` function, called with the fields of
    ``last`` (a NamedTuple) and ``params=``/``context=``; :meth:`advance` carries the
    counters named in ``carried`` from the decision's metrics into the state.
    """

    decision: ClassVar[Callable[..., Decision]]
    carried: ClassVar[tuple[str, ...]] = ()

    def decide(self) -> Decision | None:
        last = self.values.last
        return None if last is None else self.decide_on(last)

    def decide_on(self, last: Any) -> Decision | None:
        """The pure decision applied to the latest inputs."""
        return type(self).decision(**last._asdict(), params=self.params, context=self.context)

    def advance(self) -> Decision | None:
        """Decide on the latest inputs and carry the ``carried`` counters into the state."""
        decision = self.refresh()
        if decision is not None:
            for name in self.carried:
                setattr(self.values, name, int(decision.metrics[name]))
        return decision


class ScalarCheck(LatestCheck[P]):
    """A kind that decides on the named scalars of the latest observation alone (no
    history): its state is :class:`LatestScalars`."""

    state = LatestScalars

    @abstractmethod
    def scalar_names(self) -> Sequence[str]:
        """The observations it reads, given its params."""

    def update(self, observation: Observation) -> None:
        self.values.last = present_scalars(observation, self.scalar_names())
        self.refresh()


REGISTRY: dict[str, type[Check[Any]]] = KINDS  # type: ignore[assignment]  # one registry

C = TypeVar("C", bound=type[Check[Any]])


def register(cls: C) -> C:
    """Class decorator: make a check kind available to contracts by its ``kind`` name."""
    if cls.kind in REGISTRY and REGISTRY[cls.kind] is not cls:
        raise ValueError(f"check kind {cls.kind!r} is registered twice")
    REGISTRY[cls.kind] = cls
    return cls
