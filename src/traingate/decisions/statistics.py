"""The two-proportion tie test of a decision rule: pooled σ, |Δ|/σ, p-value and the MDE."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Any


@dataclass(frozen=True)
class TieResult:
    """Two-proportion z-test of A − B, everything in percentage points except z and p."""

    metric: str
    delta: float
    sigma: float  # pooled
    sigma_unpooled: float
    z: float
    p_value: float
    alpha: float
    power: float
    z_alpha: float  # z_{1 − α/2}
    z_power: float  # z_{power}
    mde: float  # (z_alpha + z_power) · sigma_unpooled

    @property
    def abs_z(self) -> float:
        """|Δ|/σ."""
        return abs(self.z)

    @property
    def significant(self) -> bool:
        """Whether |Δ|/σ reaches z_{1 − α/2} (a two-sided test at α)."""
        return self.abs_z >= self.z_alpha

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "abs_z": self.abs_z, "significant": self.significant}


def two_proportion_test(
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    metric: str = "",
) -> TieResult:
    """Pooled two-proportion z-test of rate A − rate B, and the MDE at ``alpha``/``power``.

    σ = sqrt(p(1−p)(1/n_A + 1/n_B)) with p = (s_A + s_B)/(n_A + n_B);
    MDE = (z_{1−α/2} + z_{power}) · sqrt(p_A(1−p_A)/n_A + p_B(1−p_B)/n_B). z is 0 when σ is 0
    (then both arms are all successes or all failures, so Δ is 0 too).
    """
    if trials_a <= 0 or trials_b <= 0:
        raise ValueError("a rate needs at least one trial in each arm")
    if not (0 <= successes_a <= trials_a and 0 <= successes_b <= trials_b):
        raise ValueError("successes must lie between 0 and trials")
    pa, pb = Fraction(successes_a, trials_a), Fraction(successes_b, trials_b)
    pooled = Fraction(successes_a + successes_b, trials_a + trials_b)
    var = pooled * (1 - pooled) * (Fraction(1, trials_a) + Fraction(1, trials_b))
    var_unpooled = pa * (1 - pa) / trials_a + pb * (1 - pb) / trials_b
    delta = float(100 * (pa - pb))
    sigma = 100.0 * math.sqrt(float(var))
    z = delta / sigma if sigma > 0 else 0.0
    normal = NormalDist()
    z_alpha = normal.inv_cdf(1.0 - alpha / 2.0)
    z_power = normal.inv_cdf(power)
    return TieResult(
        metric=metric,
        delta=delta,
        sigma=sigma,
        sigma_unpooled=100.0 * math.sqrt(float(var_unpooled)),
        z=z,
        p_value=math.erfc(abs(z) / math.sqrt(2.0)),
        alpha=alpha,
        power=power,
        z_alpha=z_alpha,
        z_power=z_power,
        mde=(z_alpha + z_power) * 100.0 * math.sqrt(float(var_unpooled)),
    )
