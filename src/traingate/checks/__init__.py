"""Registered invariant kinds. Importing this package registers every built-in kind.

Each module here stays importable without torch (see :mod:`traingate.checks.base`).
"""

from traingate.checks import non_divergence
from traingate.checks.base import REGISTRY, Check, CheckContext, CheckParams, Decision, register

__all__ = [
    "REGISTRY",
    "Check",
    "CheckContext",
    "CheckParams",
    "Decision",
    "non_divergence",
    "register",
]
