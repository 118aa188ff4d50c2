"""The gate rule, written once: the Guard writes with it and ``contracts check`` re-derives with it.

An ``abort`` violation fails its gates; a ``warn`` violation fails a ship-blocking gate and
leaves an advisory one at ``warn``; a gate any of whose required invariants was not
evaluated (or not recorded) is ``not_evaluated``, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Unmatched = Literal["not_applicable", "not_selected"]


def gate_status(
    statuses: Sequence[str], *, ship_blocking: bool, required: int, unmatched: Unmatched
) -> str:
    """A gate's status from the statuses of its ``required`` invariants that the run tracked.

    ``unmatched`` is the status when the run tracked none of them: ``not_applicable`` (the
    regime excludes them) or ``not_selected`` (``only=`` left them out).
    """
    if not statuses:
        return unmatched
    if "fail" in statuses or (ship_blocking and "warn" in statuses):
        return "fail"
    if "not_evaluated" in statuses or len(statuses) < required:
        return "not_evaluated"
    return "warn" if "warn" in statuses else "pass"
