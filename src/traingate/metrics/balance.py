"""Loss-balance metric: each loss component's share of the summed magnitudes (torch-free).

Seed 004's countdown loss was 90.6 % of the raw total while its task weight said 4.3 %: the
share is taken on magnitudes, so a signed term cannot cancel the total. The ``loss_balance``
check gates on it and the report draws it, from this one definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["component_shares"]


def component_shares(components: Mapping[str, float]) -> dict[str, float]:
    """Each component's share of the summed magnitudes (all 0 when every component is 0)."""
    total = math.fsum(abs(v) for v in components.values())
    return {k: abs(v) / total if total > 0 else 0.0 for k, v in components.items()}
