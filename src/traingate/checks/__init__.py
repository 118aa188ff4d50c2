"""Registered invariant kinds. Importing this package registers every built-in kind.

Each module here stays importable without torch (see :mod:`traingate.checks.base`).
"""

from traingate.checks import (
    calibration,
    confusion,
    convergence,
    expression,
    finite,
    gradient_norm,
    initial_loss,
    liveness,
    loss_balance,
    loss_spike,
    metrics_present,
    no_placeholder,
    non_divergence,
    reproducible,
)
from traingate.checks.base import REGISTRY, Check, CheckParams, register
from traingate.checks.decision import CheckContext, Decision

__all__ = [
    "REGISTRY",
    "Check",
    "CheckContext",
    "CheckParams",
    "Decision",
    "calibration",
    "confusion",
    "convergence",
    "expression",
    "finite",
    "gradient_norm",
    "initial_loss",
    "liveness",
    "loss_balance",
    "loss_spike",
    "metrics_present",
    "no_placeholder",
    "non_divergence",
    "register",
    "reproducible",
]
