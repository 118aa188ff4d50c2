"""What a Guard tells the world as the run goes: one stream, to the evidence log and listeners.

Every evidence event (``start``, ``violation``, ``warning``, ``summary``, ``resume``,
``end``, …) is written to ``evidence.jsonl`` and handed to each listener as a
:class:`GuardEvent`; so is every batch of values the Guard records for ``metrics.parquet``
(kind ``metrics``: the point's observed scalars and the limits the checks drew). A tracker
bridge (``traingate.integrations.trackers``) is one such listener. Listeners run on rank 0
only, like the evidence log. A listener that raises is logged and dropped, never allowed to
stop the gate: a tracker outage must not decide whether a run is checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from traingate.runtime.evidence import EvidenceLog

log = logging.getLogger("traingate")


@dataclass(frozen=True)
class GuardEvent:
    """One thing the Guard recorded: its ``kind``, where (``step``, ``epoch``) and its fields.

    ``data`` of a ``metrics`` event is ``{"point": "step"|"validation"|"final", name: value}``
    (e.g. ``loss``, ``grad_norm``, ``limit/INV-TRAIN-002``); of an evidence event, the
    fields its evidence line holds (see the README's evidence format).
    """

    kind: str
    step: int | None
    epoch: int | None
    data: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[GuardEvent], None]
# the evidence events the Guard writes itself (``contracts check`` derives the verdict from
# them) and the listener-only ``metrics``: a loop's own event may not take these names
GUARD_EVENTS = frozenset(
    {"start", "summary", "violation", "warning", "unevaluable", "resume", "end", "metrics"}
    | {"early_stop", "config_change", "repaired"}
)


class EventStream:
    """Writes each event to the evidence log (when there is one) and hands it to listeners."""

    def __init__(
        self, evidence: EvidenceLog | None, listeners: Iterable[Listener], *, active: bool
    ) -> None:
        self.evidence = evidence
        self.listeners: list[Listener] = list(listeners) if active else []
        self.active = active

    def add(self, listener: Listener) -> None:
        """Hand every later event to ``listener`` too (on rank 0; elsewhere a no-op)."""
        if self.active:
            self.listeners.append(listener)

    def write(self, kind: str, **fields: Any) -> None:
        """Record an evidence event and tell the listeners."""
        if self.evidence is not None:
            self.evidence.write(kind, **fields)
        self.notify(GuardEvent(kind, fields.get("step"), fields.get("epoch"), fields))

    def own(self, kind: str, **fields: Any) -> None:
        """Record an event of the loop's own (e.g. ``data_cycled`` when the data stream starts
        a new pass), at rank 0; a kind the Guard writes itself is a ValueError."""
        if kind in GUARD_EVENTS:
            raise ValueError(f"event kind {kind!r} is the Guard's own: choose another name")
        self.write(kind, **fields)

    def metrics(
        self, point: str, step: int | None, epoch: int | None, values: Mapping[str, float]
    ) -> None:
        """Tell the listeners the values recorded for ``metrics.parquet`` at one point."""
        if self.listeners and values:
            self.notify(GuardEvent("metrics", step, epoch, {"point": point, **values}))

    def notify(self, event: GuardEvent) -> None:
        """Call each listener; one that raises is logged and removed."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as exc:  # a tracker's failure must not stop the gate
                log.warning(
                    "traingate: listener %r raised %s: %s; it gets no more events",
                    listener,
                    type(exc).__name__,
                    exc,
                )
                self.listeners.remove(listener)
