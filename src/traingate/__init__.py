"""traingate: training-run promises as versioned contracts, enforced inside the loop.

``import traingate`` stays free of torch; the Guard imports it only when handed tensors.
Importing it registers every built-in check kind, so a loaded contract's params are typed.
"""

import traingate.checks  # noqa: F401  (registers the built-in kinds with traingate.contract)
from traingate.contract.formula import Formula, FormulaError
from traingate.contract.loading import LoadError, load_contract
from traingate.contract.presets import shipped
from traingate.contract.regime import Finetune, FromScratch, TrainingRegime
from traingate.contract.schema import Contract, Gate, Invariant
from traingate.contract.validation import validate_paths
from traingate.runtime.guard import Guard, InvariantViolation
from traingate.runtime.planning import UnevaluableWarning

__all__ = [
    "Contract",
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
