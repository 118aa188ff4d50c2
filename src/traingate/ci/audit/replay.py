"""Replay typed rows through the same :class:`traingate.Guard` a training loop uses.

A row feeding both points is replayed step first, then validation (a loop's order).
A ``stop`` invariant's early stop ends the replay after its row, as it would have ended the
run. After the last row (unless an abort stopped the replay) final-point invariants see the
last value of every mapped scalar, as a loop's ``guard.final()`` would. The run dir gets
the Guard's ``evidence.jsonl``, ``verdict.json`` and ``metrics.parquet``; :mod:`.auditlog`
adds ``audit.json`` (source files, digest, mapping, rows replayed, where an abort stopped
the replay, and every row skipped, with why; rows ``--where`` left out are ``excluded``).

A plain step log is replayed in bulk instead (:mod:`.bulk`), to the same end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from traingate.ci.audit.rows import Row
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.verdict import Verdict


@dataclass
class Replayed:
    """How a replay went: rows replayed, where an abort stopped it, and the error that
    ended it (``current`` is the row being fed then; None at the final point)."""

    replayed: int = 0
    stopped: dict[str, Any] | None = None
    early_stop: dict[str, Any] | None = None  # the row a `stop` invariant ended the replay at
    error: BaseException | None = None
    current: Row | None = None


def guarded(guard: Guard, done: Replayed, body: Callable[[], None]) -> Replayed:
    """Run ``body``: an abort or a check rejecting a row ends the replay and is returned,
    not raised; an interrupt (any other BaseException) closes the guard and propagates."""
    try:
        body()
    except InvariantViolation as exc:
        done.error = exc
        done.replayed += done.current is not None  # the aborting row was replayed up to the abort
        done.stopped = {
            "row": done.current.number if done.current else None,
            "line": done.current.line if done.current else None,
            "point": exc.record.at,
            "invariant": exc.invariant_id,
            "step": exc.step,
            "epoch": exc.epoch,
        }
    except Exception as exc:  # a check rejecting a row: record the crash, then report it
        done.error = exc
    except BaseException as exc:
        guard.close(exc)
        raise
    return done


def final_point(guard: Guard, done: Replayed, last: dict[str, float]) -> None:
    """The final point, as a loop's ``guard.final()`` after the rows replayed."""
    if done.replayed and guard.by_point["final"]:
        done.current = None
        guard.final(**last)


def replay(guard: Guard, rows: Sequence[Row]) -> Replayed:
    """Feed ``rows`` to ``guard`` as a loop would, then its final point; the guard stays open.

    An abort or a check rejecting a row ends the replay and is returned, not raised; an
    interrupt (any other BaseException) closes the guard with it and propagates.
    """
    done = Replayed()

    def body() -> None:
        last: dict[str, float] = {}
        for row in rows:
            done.current = row
            if row.step_obs:
                guard.step(row.step, **row.step_obs)  # type: ignore[arg-type]
            if row.val_obs:
                guard.validation(row.epoch, step=row.step, **row.val_obs)  # type: ignore[arg-type]
            last.update(row.scalars)
            done.replayed += 1
            if guard.should_stop:  # a `stop` invariant: the run would have ended here
                done.early_stop = {"row": row.number, "line": row.line, **(guard.early_stop or {})}
                return final_point(guard, done, last)
        final_point(guard, done, last)

    return guarded(guard, done, body)


@dataclass(frozen=True)
class Audited:
    """An audit's outcome: the Guard's verdict and the provenance written to ``audit.json``
    (``audit["stopped_at"]`` is the row an abort stopped the replay at, or None;
    ``audit["skipped_rows"]`` lists each row left out: ``{"row", "line", "why"}``)."""

    verdict: Verdict
    audit: dict[str, Any]
