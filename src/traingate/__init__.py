"""traingate: training-run promises as versioned contracts, enforced inside the loop.

``import traingate`` stays free of torch; the Guard imports it only when handed tensors.
"""

from traingate.formula import Formula, FormulaError
from traingate.guard import Guard, InvariantViolation
from traingate.loading import LoadError, load_contract
from traingate.regime import Finetune, FromScratch, TrainingRegime
from traingate.schema import Contract, Gate, Invariant
from traingate.validation import validate_paths

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
    "load_contract",
    "validate_paths",
]
__version__ = "0.1.0"
