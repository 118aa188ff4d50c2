"""GradScaler overflow steps as skips: what both framework adapters tell the Guard.

Under fp16 AMP a ``GradScaler`` skips a step whose (unscaled) gradients are not finite and
lowers its scale; while it searches for a scale that fits, such steps are routine, not a
failure. A step with a finite loss and a non-finite gradient norm under an enabled scaler
is therefore fed to the Guard as a skip (its loss and ``overflow_skipped=1``, no gradient
norm), up to ``limit`` in a row; the next one reaches the Guard whole, so INV-TRAIN-001
aborts. A non-finite loss is never a skip, and a disabled scaler skips nothing.
"""

from __future__ import annotations

from typing import Any


def enabled_scaler(scaler: Any) -> Any:
    """``scaler`` if it is an enabled GradScaler, else None (a disabled one applies every step)."""
    return scaler if scaler is not None and scaler.is_enabled() else None


class OverflowSkips:
    """Counts consecutive overflow skips and decides what ``guard.step`` is given."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"max_overflow_skips must be >= 0, not {limit}")
        self.limit = limit
        self.count = 0  # consecutive skips, as the Guard was told

    def step_observations(self, loss: Any, norm: Any, scaler: Any) -> dict[str, Any]:
        """The observations of this step: a tolerated skip, or its loss and gradient norm."""
        if scaler is not None and norm is not None and self._tolerated(loss, norm):
            return {"loss": loss, "overflow_skipped": 1.0}
        return {"loss": loss, "grad_norm": norm}

    def _tolerated(self, loss: Any, norm: Any) -> bool:
        import torch

        finite = torch.isfinite(torch.stack([loss.detach().float(), norm.float()])).tolist()
        if not finite[0] or finite[1]:
            self.count = 0
            return False
        self.count += 1
        return self.count <= self.limit
