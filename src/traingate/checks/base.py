"""The shape every invariant kind takes: a params model, a pure decision, a stateful check.

Like a torchmetrics ``Metric``: ``update()`` folds observations into state, ``verdict()``
decides, ``reset()`` clears. The decision itself lives in a pure function of plain numbers
that the falsifiers call directly, so the code that runs is the code that is tested.

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

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from traingate.contract.kinds import KINDS, At, CheckParams
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.thresholds import RegimeThreshold, Resolved, resolve

Observation = Mapping[str, Any]
__all__ = ["At", "Check", "CheckContext", "CheckParams", "Decision", "Observation", "register"]


P = TypeVar("P", bound=CheckParams)


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


@dataclass(frozen=True)
class CheckContext:
    """What a check knows about the run: the regime and the run parameter values."""

    regime: Finetune | FromScratch
    values: Mapping[str, float] = field(default_factory=dict)

    def resolve(self, threshold: Any) -> Resolved:
        """Evaluate a threshold field of the params for this run."""
        return resolve(threshold, self.regime, self.values)


class Check(ABC, Generic[P]):
    """A stateful evaluator of one invariant kind.

    Class attributes declare the kind: its registry name, its params model, the points
    (``at:``) where it may run, the observations it needs, and how state crosses ranks:
    ``gather`` names observation fields concatenated across ranks before ``update`` (like
    torchmetrics' ``dist_reduce_fx="cat"``); verdicts reduce with "any rank violated".
    """

    kind: ClassVar[str]
    params_model: ClassVar[type[CheckParams]]
    points: ClassVar[frozenset[str]]
    requires: ClassVar[frozenset[str]] = frozenset()
    gather: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""

    def __init__(self, params: P, context: CheckContext) -> None:
        self.params = params
        self.context = context

    @classmethod
    def metric_symbols(cls, params: CheckParams) -> frozenset[str]:
        """Formula symbols that name observations rather than run parameters."""
        return frozenset()

    def observes(self) -> frozenset[str]:
        """Observations this invariant needs, given its params (default: ``requires``).

        The Guard evaluates an invariant only at points that provide all of them, so a
        missing observation reads "not evaluated", never a crash or a silent pass.
        """
        return self.requires

    @classmethod
    def regime_keyed(cls, params: CheckParams) -> bool:
        """Whether any threshold in ``params`` depends on the regime."""
        return any(
            isinstance(getattr(params, n), RegimeThreshold) for n in type(params).model_fields
        )

    @abstractmethod
    def update(self, observation: Observation) -> None:
        """Fold one observation into the check's state."""

    @abstractmethod
    def verdict(self) -> Decision | None:
        """Decide on the state so far; ``None`` when there is nothing to decide yet."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all state (a new run)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for exact resume from a checkpoint (stateless kinds keep none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        del state


REGISTRY: dict[str, type[Check[Any]]] = KINDS  # type: ignore[assignment]  # one registry

C = TypeVar("C", bound=type[Check[Any]])


def register(cls: C) -> C:
    """Class decorator: make a check kind available to contracts by its ``kind`` name."""
    if cls.kind in REGISTRY and REGISTRY[cls.kind] is not cls:
        raise ValueError(f"check kind {cls.kind!r} is registered twice")
    REGISTRY[cls.kind] = cls
    return cls
