"""INV-TRAIN-007 no constant placeholder: a real loss never repeats exactly, step after step.

Origin: a step function returned a constant placeholder (train_loss 1.0, grad_norm 1.0
exactly, train_ppl = e) once its shard stream ran dry, and three "epochs" of fake
convergence were reported. A float loss of real data differs in its last bits from one
step to the next, so the check fires when a listed observation has been exactly the same
value on ``window`` consecutive steps it was present on, or when every field of a declared
``fingerprint`` (e.g. ``{loss: 1.0, grad_norm: 1.0}``) matched exactly for ``window``
consecutive steps. NaN never equals itself: it breaks a streak (finiteness is
INV-TRAIN-001's job).

A loss reported in bf16 (8 mantissa bits) can repeat exactly on a plateau: hand the Guard
the fp32 loss (``cross_entropy`` under autocast already returns one), or raise ``window``.

Until ``window`` steps carried one of its observations the verdict is ``None`` (not
evaluated): a shorter run cannot have repeated a value ``window`` times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from pydantic import Field, field_validator

from traingate.checks.base import (
    Check,
    CheckParams,
    Observation,
    register,
    scalar_names,
)
from traingate.checks.decision import CheckContext, Decision, Quick


class NoPlaceholderParams(CheckParams):
    """Fires when an ``observations`` value, or the whole ``fingerprint``, repeats exactly
    on ``window`` consecutive steps."""

    observations: list[str] = Field(default_factory=lambda: ["loss", "grad_norm"], min_length=1)
    window: int = Field(default=5, ge=2)
    fingerprint: dict[str, float] = Field(default_factory=dict)

    _scalars = field_validator("observations")(scalar_names)

    @field_validator("fingerprint")
    @classmethod
    def _scalar_fields(cls, fingerprint: dict[str, float]) -> dict[str, float]:
        scalar_names(list(fingerprint))
        return fingerprint


@dataclass
class Repeat:
    """An observation's latest value and on how many consecutive steps it had it (0 after
    a NaN, which equals nothing)."""

    value: float
    count: int


class Streaks(NamedTuple):
    """Each observation's repeat, the fingerprint streak, and how many steps carried an
    observation of this kind (see :func:`advance`)."""

    repeats: dict[str, Repeat]
    fingerprint_streak: int
    seen: int


def advance(
    *, observed: Mapping[str, float], streaks: Streaks, params: NoPlaceholderParams
) -> Streaks:
    """The streaks after one step that carried ``observed`` (at least one of the kind's
    observations or fingerprint fields), given those before it.

    An observation absent from ``observed`` keeps its streak; one equal to its previous
    value extends it; NaN sets it to 0; any other value starts a new streak of 1. The
    fingerprint streak grows on a step carrying every fingerprint field at exactly its
    value, stays on a step carrying none of them, and is 0 after any other step.
    """
    repeats = dict(streaks.repeats)
    for name in params.observations:
        if name not in observed:
            continue
        value = observed[name]
        before = streaks.repeats.get(name)
        if math.isnan(value):
            repeats[name] = Repeat(value, 0)
        elif before is not None and value == before.value:
            repeats[name] = Repeat(value, before.count + 1)
        else:
            repeats[name] = Repeat(value, 1)
    fingerprint = params.fingerprint
    matches = streaks.fingerprint_streak
    if fingerprint and any(name in observed for name in fingerprint):
        matched = all(observed.get(name) == value for name, value in fingerprint.items())
        matches = matches + 1 if matched else 0
    return Streaks(repeats, matches, streaks.seen + 1)


def check_no_placeholder(
    *,
    repeats: Mapping[str, Repeat],
    fingerprint_streak: int,
    seen: int,
    params: NoPlaceholderParams,
    context: CheckContext,
) -> Decision | None:
    """Decide on the streaks after ``seen`` steps that carried an observation of this kind.

    ``None`` while ``seen`` < window. Fails when an observation's streak or the fingerprint
    streak reaches ``window``; ``observed`` is the longest streak, ``limit`` the window.
    ``metrics`` has ``streak/NAME`` per observation seen and ``fingerprint_streak``.
    """
    del context  # nothing here depends on the regime or run values
    judged = longest_repeat(
        repeats=repeats, fingerprint_streak=fingerprint_streak, seen=seen, params=params
    )
    if judged is None:
        return None
    name, longest, by_fingerprint, fired = judged
    window = params.window
    metrics = {f"streak/{n}": float(r.count) for n, r in repeats.items()}
    metrics["fingerprint_streak"] = float(fingerprint_streak)
    if by_fingerprint:
        fields = ", ".join(f"{n}={v!r}" for n, v in params.fingerprint.items())
        what = f"every fingerprint field matched exactly ({fields})"
        streak = fingerprint_streak
    elif fired:
        what = f"{name} was exactly {repeats[name].value!r}"
        streak = longest
    else:
        return Decision(
            ok=True,
            observed=float(max(longest, fingerprint_streak)),
            limit=float(window),
            comparison="<",
            detail=f"longest exact repeat {longest} step(s) ({name or 'none'}); fires at {window}",
            metrics=metrics,
        )
    return Decision(
        ok=False,
        observed=float(streak),
        limit=float(window),
        comparison="<",
        detail=f"{what} on {streak} consecutive steps (fires at {window})",
        hint="a constant placeholder is being reported instead of a real loss: the data "
        "stream likely ran dry; cycle the stream (with one log line) or halt the run",
        metrics=metrics,
    )


def longest_repeat(
    *,
    repeats: Mapping[str, Repeat],
    fingerprint_streak: int,
    seen: int,
    params: NoPlaceholderParams,
) -> tuple[str, int, bool, bool] | None:
    """The observation with the longest exact repeat ("" when none) and its length,
    whether the fingerprint streak reached ``window``, and whether either did (the check
    fires); ``None`` while ``seen`` < window."""
    window = params.window
    if seen < window:
        return None
    listed = [n for n in params.observations if n in repeats]
    name = max(listed, key=lambda n: repeats[n].count, default="")
    longest = repeats[name].count if name else 0
    by_fingerprint = fingerprint_streak >= window
    return name, longest, by_fingerprint, by_fingerprint or longest >= window


@dataclass
class NoPlaceholderState:
    """The streaks so far, and whether the latest step carried an observation of this kind."""

    streaks: Streaks = field(default_factory=lambda: Streaks({}, 0, 0))
    evaluated: bool = False


@register
class NoPlaceholder(Check[NoPlaceholderParams]):
    """Folds each step into the streaks (:func:`advance`) and applies
    :func:`check_no_placeholder`; a step carrying none of its observations is not evaluated
    and changes nothing."""

    kind = "no_placeholder"
    params_model = NoPlaceholderParams
    points = frozenset({"step"})
    summary = "no observation (or the fingerprint) repeats exactly on window consecutive steps"
    state = NoPlaceholderState
    values: NoPlaceholderState

    @classmethod
    def first_decision(cls, params: CheckParams) -> int:
        """``window``: :func:`check_no_placeholder` is ``None`` until ``window`` steps carried
        one of its observations, since no shorter run can repeat a value that often."""
        return cls.own(params).window

    def observes_any(self) -> frozenset[str]:
        """Its observations and fingerprint fields: a step must carry at least one."""
        return frozenset(self.params.observations) | frozenset(self.params.fingerprint)

    def update(self, observation: Observation) -> None:
        self._fold(observation)
        self.refresh()

    @cached_property
    def _names(self) -> frozenset[str]:
        """:meth:`observes_any` (fixed by the params: taken once)."""
        return self.observes_any()

    def _fold(self, observation: Observation) -> Streaks | None:
        """Fold the step into the streaks (:func:`advance`); they are returned, or ``None``
        when the step carried none of its observations (then nothing changes)."""
        s = self.values
        observed = {n: float(v) for n in self._names if (v := observation.get(n)) is not None}
        s.evaluated = bool(observed)
        if not observed:
            return None
        s.streaks = advance(observed=observed, streaks=s.streaks, params=self.params)
        return s.streaks

    def observe(self, observation: Observation) -> Quick | None:
        """Nothing repeated ``window`` times (:func:`longest_repeat`): a pass at the longest."""
        streaks = self._fold(observation)
        if streaks is not None:
            judged = longest_repeat(
                repeats=streaks.repeats,
                fingerprint_streak=streaks.fingerprint_streak,
                seen=streaks.seen,
                params=self.params,
            )
            if judged is not None and not judged[3]:
                longest = float(max(judged[1], streaks.fingerprint_streak))
                return self.passed(longest, float(self.params.window), "<", streaks)
        self.refresh()
        return None

    def decide(self) -> Decision | None:
        return self.decide_on(self.values.streaks) if self.values.evaluated else None

    def decide_on(self, inputs: Streaks) -> Decision | None:
        return check_no_placeholder(**inputs._asdict(), params=self.params, context=self.context)
