"""Shared by the check tests: the contexts they judge in, a kind built from raw params, and
the two ways a check is fed (a verdict after each step, or one after a validation's batches)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from traingate.checks.base import Check
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.regime import Finetune, FromScratch

FINETUNE = CheckContext(Finetune())
SCRATCH = CheckContext(FromScratch(256))

C = TypeVar("C", bound=Check[Any])
Verdicts = list[Decision | None]


def build(kind: type[C], context: CheckContext, /, **params: object) -> C:
    """A ``kind`` check in ``context``, its raw params validated by the kind's model."""
    return kind(kind.params_model.model_validate(params), context)


def maker(kind: type[C], context: CheckContext) -> Callable[..., C]:
    """``make(**params)``: a ``kind`` check in ``context`` from raw params."""
    return lambda **params: build(kind, context, **params)


def feed(check: Check[Any], observations: Iterable[Mapping[str, Any]]) -> Verdicts:
    """Update ``check`` with each observation in turn and take its verdict after each."""
    out = []
    for observation in observations:
        check.update(observation)
        out.append(check.verdict())
    return out


def scalar_feed(name: str) -> Callable[[Check[Any], Iterable[float]], Verdicts]:
    """``feed`` for a kind that reads one scalar: each value is observed as ``{name: value}``."""
    return lambda check, values: feed(check, ({name: value} for value in values))


def verdict_after(check: Check[Any], *observations: Mapping[str, Any]) -> Decision | None:
    """Update ``check`` with every observation (a validation's batches), then one verdict."""
    for observation in observations:
        check.update(observation)
    return check.verdict()
