"""The contract layer's view of a check kind: its params model and where it may run.

Kinds are implemented in :mod:`traingate.checks` (a later layer) and register themselves
here on import, so loading a contract can type each invariant's ``params`` by its kind
without this layer importing the checks. ``import traingate`` registers every built-in kind.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from pydantic import ConfigDict

from traingate.contract.fields import Strict

At = Literal["step", "validation", "final"]


class CheckParams(Strict):
    """Base for a kind's params: strict, closed, immutable (like every contract model).

    Every kind's params model inherits ``defer_build``: its validator is built when first
    used, so importing the kinds builds none and a validation builds only the params
    models of the kinds its contracts name.
    """

    model_config = ConfigDict(defer_build=True)


class Kind(Protocol):
    """What a contract needs to know of a kind (a :class:`traingate.checks.Check` subclass)."""

    kind: ClassVar[str]
    params_model: ClassVar[type[CheckParams]]
    points: ClassVar[frozenset[str]]

    @classmethod
    def metric_symbols(cls, params: CheckParams) -> frozenset[str]: ...


KINDS: dict[str, type[Kind]] = {}
