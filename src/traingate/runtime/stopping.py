"""The Guard's graceful early stop: what a violated ``on_violation: stop`` invariant sets.

Lightning's ``EarlyStopping`` returns ``(should_stop, reason)`` and the Trainer ends the
loop; here the Guard keeps the pair (:attr:`StopsEarly.should_stop`,
:attr:`StopsEarly.stop_reason`) and the loop, the trainer or an integration acts on it. The
first violated ``stop`` invariant is recorded once, as an ``early_stop`` evidence event and
in the verdict's ``early_stop``; it raises nothing and fails nothing by itself.
"""

from __future__ import annotations

import logging
from typing import Any

from traingate.runtime.events import EventStream
from traingate.runtime.violation import ViolationRecord

log = logging.getLogger("traingate")


class StopsEarly:
    """The early-stop state of a :class:`traingate.Guard` (which mixes this in)."""

    early_stop: dict[str, Any] | None = None  # the first violated ``stop`` invariant
    events: EventStream

    def _stop_early(self, record: ViolationRecord) -> None:
        """The first violated ``stop`` invariant asks the loop to end: recorded once, as an
        ``early_stop`` event; every rank got the same reduced decision, so every rank stops."""
        if self.early_stop is not None:
            return
        self.early_stop = {
            "invariant": record.invariant_id,
            "reason": record.decision.detail,
            "step": record.step,
            "epoch": record.epoch,
        }
        self.events.write("early_stop", **self.early_stop)
        log.warning("traingate: early stop: %s", self.stop_reason)

    @property
    def should_stop(self) -> bool:
        """Whether a ``stop`` invariant was violated: the loop should end early and cleanly
        (save, run the final point, close); the trainer and both integrations honour it."""
        return self.early_stop is not None

    @property
    def stop_reason(self) -> str | None:
        """``INV-ID: why`` of the early stop, or ``None`` when the loop need not stop."""
        if self.early_stop is None:
            return None
        return f"{self.early_stop['invariant']}: {self.early_stop['reason']}"
