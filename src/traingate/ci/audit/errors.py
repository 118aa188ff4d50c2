"""The one error an audit raises for input it cannot replay."""

from __future__ import annotations

from traingate.errors import TraingateError


class AuditError(TraingateError):
    """The metrics log cannot be replayed as asked (unreadable, unmapped, bad cell): exit 2."""
