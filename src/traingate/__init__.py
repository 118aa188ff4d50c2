"""traingate: training-run promises as versioned contracts, enforced inside the loop.

``import traingate`` stays free of torch; the Guard imports it only when handed tensors.
Importing it registers every built-in check kind, so a loaded contract's params are typed.
Every other public name is imported on first use (module ``__getattr__``): validating
contracts never pays for the runtime, the decisions or the Guard.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import traingate.checks  # noqa: F401  (registers the built-in kinds with traingate.contract)

if TYPE_CHECKING:
    from traingate.contract.formula import Formula, FormulaError
    from traingate.contract.loading import LoadError, load_contract
    from traingate.contract.presets import shipped
    from traingate.contract.regime import Finetune, FromScratch, TrainingRegime
    from traingate.contract.schema import Contract, Gate, Invariant
    from traingate.contract.validation import validate_paths
    from traingate.runtime.guard import Guard, InvariantViolation
    from traingate.runtime.planning import UnevaluableWarning

# public name → the module that defines it
_LAZY = {
    "Contract": "traingate.contract.schema",
    "DeferredSteps": "traingate.runtime.deferred",
    "Finetune": "traingate.contract.regime",
    "Formula": "traingate.contract.formula",
    "FormulaError": "traingate.contract.formula",
    "FromScratch": "traingate.contract.regime",
    "Gate": "traingate.contract.schema",
    "Guard": "traingate.runtime.guard",
    "Invariant": "traingate.contract.schema",
    "InvariantViolation": "traingate.runtime.guard",
    "LoadError": "traingate.contract.loading",
    "TrainingRegime": "traingate.contract.regime",
    "UnevaluableWarning": "traingate.runtime.planning",
    "load_contract": "traingate.contract.loading",
    "shipped": "traingate.contract.presets",
    "validate_paths": "traingate.contract.validation",
}

__all__ = [
    "Contract",
    "DeferredSteps",
    "Finetune",
    "Formula",
    "FormulaError",
    "FromScratch",
    "Gate",
    "Guard",
    "Invariant",
    "InvariantViolation",
    "LoadError",
    "TrainingRegime",
    "UnevaluableWarning",
    "load_contract",
    "shipped",
    "validate_paths",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
