"""Pre-registered A/B decisions: a contract's rule applied to two runs' sidecars.

The rule's schema lives in :mod:`traingate.contract.decision_rule` (contracts embed it);
this layer reads the numbers (:mod:`.sidecars`), runs the tie test (:mod:`.statistics`)
and applies the rule (:mod:`.apply`).
"""

from traingate.contract.decision_rule import DecisionRule, Metric, Source
from traingate.contract.predicate import Predicate, parse_predicate
from traingate.decisions.apply import (
    BranchResult,
    DecisionResult,
    DeltaResult,
    MetricResult,
    evaluate_rule,
)
from traingate.decisions.sidecars import DecisionError, Reading, read_run
from traingate.decisions.statistics import TieResult, two_proportion_test

__all__ = [
    "BranchResult",
    "DecisionError",
    "DecisionResult",
    "DecisionRule",
    "DeltaResult",
    "Metric",
    "MetricResult",
    "Predicate",
    "Reading",
    "Source",
    "TieResult",
    "evaluate_rule",
    "parse_predicate",
    "read_run",
    "two_proportion_test",
]
