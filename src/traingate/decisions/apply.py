"""Applying a decision rule to two runs: read, compute deltas and the tie test, pick a branch.

``evaluate_rule`` returns everything it read and decided (a :class:`DecisionResult`), so a
verdict can always be traced back to a file and a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from traingate.contract.decision_rule import DecisionRule
from traingate.contract.formula import FormulaError
from traingate.decisions.sidecars import DecisionError, Reading, read_run
from traingate.decisions.statistics import TieResult, two_proportion_test


@dataclass(frozen=True)
class MetricResult:
    """A metric in both runs: percent for rates (with their counts), the value otherwise."""

    name: str
    kind: str
    higher_is_better: bool
    a: float
    b: float
    counts_a: tuple[int, int] | None = None
    counts_b: tuple[int, int] | None = None


@dataclass(frozen=True)
class DeltaResult:
    """A − B of one metric (percentage points for rates) and which arm it favours."""

    name: str
    metric: str
    value: float
    unit: str
    favours: Literal["A", "B", "neither"]


@dataclass(frozen=True)
class BranchResult:
    """One branch: its predicate (or ``otherwise``), truth, evaluated form, and if taken."""

    index: int  # 1-based
    when: str | None
    verdict: str
    holds: bool
    evaluated: str
    taken: bool


@dataclass(frozen=True)
class DecisionResult:
    """Everything a decision read, computed and evaluated, and the verdict it reached."""

    rule: str
    title: str
    arms: tuple[str, str]
    run_a: str
    run_b: str
    readings: tuple[Reading, ...]
    metrics: tuple[MetricResult, ...]
    deltas: tuple[DeltaResult, ...]
    tie: TieResult | None
    symbols: dict[str, float]
    branches: tuple[BranchResult, ...]
    verdict: str | None

    @property
    def taken(self) -> BranchResult | None:
        return next((b for b in self.branches if b.taken), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "arms": {"a": self.arms[0], "b": self.arms[1]},
            "runs": {"a": self.run_a, "b": self.run_b},
            "readings": [r.to_dict() for r in self.readings],
            "metrics": [asdict(m) for m in self.metrics],
            "deltas": [asdict(d) for d in self.deltas],
            "deltas_are": "A − B; rates in percentage points",
            "tie": self.tie.to_dict() if self.tie else None,
            "symbols": dict(self.symbols),
            "branches": [asdict(b) for b in self.branches],
            "taken": self.taken.index if self.taken else None,
            "verdict": self.verdict,
        }


def _unusable(reading: Reading, problem: str) -> DecisionError:
    """A DecisionError naming the run, file and field of ``reading`` and what is wrong."""
    return DecisionError(
        f"run {reading.run}: {reading.path}: field `{reading.field}` {problem}",
        run=reading.run,
        file=reading.path,
        field=reading.field,
    )


def _counts(got: Mapping[tuple[str, str, str], Reading], run: str, name: str) -> tuple[int, int]:
    """(successes, trials) of a rate metric in one run, checked to be usable counts."""
    successes, trials = got[(run, name, "successes")], got[(run, name, "trials")]
    for reading in (successes, trials):
        if reading.exact.denominator != 1 or reading.exact < 0:
            raise _unusable(
                reading, f"is a count and must be a non-negative integer (got {reading.raw})"
            )
    if trials.exact == 0:
        raise _unusable(trials, "is 0: a rate needs at least one trial")
    if successes.exact > trials.exact:
        raise _unusable(
            successes,
            f"= {successes.raw} exceeds its trials (`{trials.field}` = {trials.raw})",
        )
    return int(successes.exact), int(trials.exact)


def evaluate_rule(rule: DecisionRule, run_a: Path, run_b: Path) -> DecisionResult:
    """Read ``rule``'s numbers from both runs and apply it; deltas are A − B.

    Every branch is evaluated (for the report); the first that holds gives the verdict,
    which is None only when no branch holds and the rule has no ``otherwise``.
    Raises DecisionError, naming the file and field, when a number cannot be read or used.
    """
    readings = (*read_run(rule, Path(run_a), "A"), *read_run(rule, Path(run_b), "B"))
    got = {(r.run, r.metric, r.role): r for r in readings}
    symbols: dict[str, float] = {}
    values: dict[str, tuple[Fraction, Fraction]] = {}
    counts: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    metrics: list[MetricResult] = []
    for name, metric in rule.metrics.items():
        if metric.kind == "rate":
            ca, cb = _counts(got, "A", name), _counts(got, "B", name)
            counts[name] = (ca, cb)
            va, vb = Fraction(100 * ca[0], ca[1]), Fraction(100 * cb[0], cb[1])
            metrics.append(
                MetricResult(name, "rate", metric.higher_is_better, float(va), float(vb), ca, cb)
            )
        else:
            va, vb = got[("A", name, "value")].exact, got[("B", name, "value")].exact
            metrics.append(
                MetricResult(name, "value", metric.higher_is_better, float(va), float(vb))
            )
        values[name] = (va, vb)
        symbols[f"{name}_a"], symbols[f"{name}_b"] = float(va), float(vb)
    deltas: list[DeltaResult] = []
    for name, metric_name in rule.deltas.items():
        va, vb = values[metric_name]
        metric = rule.metrics[metric_name]
        favours: Literal["A", "B", "neither"] = (
            "neither" if va == vb else "A" if (va > vb) == metric.higher_is_better else "B"
        )
        unit = "pp" if metric.kind == "rate" else ""
        deltas.append(DeltaResult(name, metric_name, float(va - vb), unit, favours))
        symbols[name] = float(va - vb)
    tie = None
    if rule.tie is not None:
        (sa, na), (sb, nb) = counts[rule.tie.metric]
        tie = two_proportion_test(
            sa, na, sb, nb, alpha=rule.tie.alpha, power=rule.tie.power, metric=rule.tie.metric
        )
        symbols.update(
            sigma=tie.sigma,
            sigma_unpooled=tie.sigma_unpooled,
            z=tie.z,
            p_value=tie.p_value,
            mde=tie.mde,
        )
    branches: list[BranchResult] = []
    verdict: str | None = None
    for index, branch in enumerate(rule.branches, 1):
        if branch.when is None:
            holds, evaluated = True, "otherwise"
        else:
            try:
                holds = branch.when.evaluate(symbols)
                evaluated = branch.when.render(symbols)
            except FormulaError as exc:
                raise DecisionError(
                    f"{rule.id} branch {index} `{branch.when.source}`: {exc.message}"
                ) from None
        taken = holds and verdict is None
        if taken:
            verdict = branch.verdict
        source = branch.when.source if branch.when is not None else None
        branches.append(BranchResult(index, source, branch.verdict, holds, evaluated, taken))
    arms = (rule.arms.a, rule.arms.b) if rule.arms else ("A", "B")
    return DecisionResult(
        rule=rule.id,
        title=rule.title,
        arms=arms,
        run_a=str(run_a),
        run_b=str(run_b),
        readings=readings,
        metrics=tuple(metrics),
        deltas=tuple(deltas),
        tie=tie,
        symbols=symbols,
        branches=tuple(branches),
        verdict=verdict,
    )
