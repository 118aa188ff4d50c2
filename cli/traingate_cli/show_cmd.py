"""``show``: a contract, invariant, gate or decision rule, with thresholds evaluated for a
regime; ``--format json`` prints the same as one JSON object (keys: ``contract``, ``file``,
``regime``, ``gates``, ``invariants``, ``decisions``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic_core import to_jsonable_python

from traingate.contract.decision_rule import DecisionRule
from traingate.contract.formula import Formula, FormulaError
from traingate.contract.loading import LoadedContract, suggest
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.schema import Contract, Gate, Invariant
from traingate.contract.thresholds import RegimeThreshold, iter_formulas
from traingate.contract.validation import Report
from traingate_cli.common import (
    PROG,
    format_option,
    gate_json,
    invariant_json,
    load_report,
    param_option,
    parse_params,
    regime_option,
)
from traingate_cli.usage import fail

Regime = Finetune | FromScratch


@dataclass(frozen=True)
class Target:
    """What an id names: a contract, one of its invariants, gates or decision rules."""

    loaded: LoadedContract
    contract: Contract
    invariant: Invariant | None = None
    gate: Gate | None = None
    rule: DecisionRule | None = None

    def invariants(self) -> list[Invariant]:
        """The invariants shown: the one named, a gate's, or (the contract) all of them."""
        c = self.contract
        if self.invariant is not None:
            return [self.invariant]
        if self.gate is not None:
            return [i for i in c.invariants if i.id in self.gate.requires]
        return [] if self.rule is not None else list(c.invariants)

    def gates(self) -> list[Gate]:
        """The gates shown: the one named, those requiring the invariant, or all of them."""
        if self.gate is not None:
            return [self.gate]
        if self.invariant is not None:
            return [g for g in self.contract.gates if self.invariant.id in g.requires]
        return [] if self.rule is not None else list(self.contract.gates)

    def decisions(self) -> list[DecisionRule]:
        """The decision rules shown: the one named, or (the contract) all of them."""
        if self.rule is not None:
            return [self.rule]
        whole = self.invariant is None and self.gate is None
        return list(self.contract.decisions) if whole else []


def find_target(report: Report, ident: str) -> Target:
    """The contract that defines ``ident`` and what in it ``ident`` names; exits 2 if none."""
    for lc in report.loaded:
        c = lc.contract
        if c is None:
            continue
        if c.contract == ident:
            return Target(lc, c)
        for inv in c.invariants:
            if inv.id == ident:
                return Target(lc, c, invariant=inv)
        for gate in c.gates:
            if gate.id == ident:
                return Target(lc, c, gate=gate)
        for rule in c.decisions:
            if rule.id == ident:
                return Target(lc, c, rule=rule)
    known = sorted(
        ident
        for lc in report.loaded
        if lc.contract
        for ident in [
            lc.contract.contract,
            *(i.id for i in lc.contract.invariants),
            *(g.id for g in lc.contract.gates),
            *(r.id for r in lc.contract.decisions),
        ]
    )
    hint = suggest(ident, known)
    fail(PROG, f"no contract, invariant, gate or decision rule named {ident}{hint}")


def chosen_regime(regime: str | None, values: dict[str, float]) -> Regime | None:
    """The ``--regime`` asked for; from-scratch needs ``--param vocab_size=N`` (else exit 2)."""
    if regime == "finetune":
        return Finetune()
    if regime == "from-scratch":
        if "vocab_size" not in values:
            fail(PROG, "--regime from-scratch needs --param vocab_size=N")
        return FromScratch(int(values["vocab_size"]))
    return None


@click.command()
@click.argument("ident")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@regime_option(None, help="Evaluate thresholds for this regime.")
@param_option()
@format_option("text", "json")
def show(
    ident: str, paths: tuple[Path, ...], regime: str | None, params: tuple[str, ...], fmt: str
) -> None:
    """Show a contract, invariant, gate or decision rule, with thresholds evaluated for a
    regime."""
    target = find_target(load_report(paths, None), ident)
    contract = target.contract
    values = parse_params(params)
    for name, value in values.items():
        spec = contract.parameters.get(name)
        if spec is None:
            fail(
                PROG,
                f"--param {name}: {contract.contract} declares no such parameter "
                f"(declared: {', '.join(contract.parameters) or 'none'})",
            )
        try:
            spec.check_value(name, value)
        except ValueError as exc:
            fail(PROG, str(exc))
    chosen = chosen_regime(regime, values)
    if fmt == "json":
        click.echo(json.dumps(show_json(target, chosen, values), indent=2))
        return
    lc = target.loaded
    click.echo(f"{contract.ref}  {contract.title}  [{contract.status}]  {lc.display}")
    for gate in target.gates():
        blocking = "ship-blocking" if gate.ship_blocking else "advisory"
        click.echo(f"gate {gate.id}: requires {', '.join(gate.requires)} ({blocking})")
    for item in target.invariants():
        show_invariant(item, chosen, values)
    for rule in target.decisions():
        show_rule(rule)


def thresholds(
    inv: Invariant, regime: Regime | None, values: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Each param of ``inv``: ``{"value": v}``, or for a formula ``{"formulas": {label:
    {"source", "evaluated", "value"}}}`` (``value`` a number when every symbol is bound)."""
    scope = {**values, **(regime.symbols() if regime else {})}
    out: dict[str, dict[str, Any]] = {}
    for name in type(inv.params).model_fields:
        value = getattr(inv.params, name)
        formulas = iter_formulas(value)
        if not formulas:
            out[name] = {"value": to_jsonable_python(value)}
            continue
        forms: dict[str, Formula]
        if isinstance(value, RegimeThreshold):
            forms = {"finetune": value.finetune, "from_scratch": value.from_scratch}
            if regime is not None:
                forms = {regime.kind: value.for_regime(regime)}
        elif len(formulas) == 1:
            forms = {"": formulas[0][1]}
        else:
            forms = {".".join(str(p) for p in path): f for path, f in formulas}
        out[name] = {"formulas": {label: evaluated(f, scope) for label, f in forms.items()}}
    return out


def evaluated(formula: Formula, scope: dict[str, float]) -> dict[str, Any]:
    """A formula's source, its form with ``scope`` substituted, and its value (or None)."""
    try:
        form: str | None = formula.evaluated_form(scope)
    except FormulaError:
        form = None
    try:
        number: float | None = formula.evaluate(scope)
    except (FormulaError, KeyError, ValueError, ZeroDivisionError):
        number = None
    if number is not None and not math.isfinite(number):
        number = None  # JSON has no inf
    return {"source": formula.source, "evaluated": form, "value": number}


def show_invariant(inv: Invariant, regime: Regime | None, values: dict[str, float]) -> None:
    """Print one invariant: its check, each param (formulas evaluated), its falsifiers."""
    click.echo(f"\n{inv.id}  {inv.title}")
    click.echo(f"  check {inv.check} at {inv.at}; on violation: {inv.on_violation}")
    if regime is not None:
        shown = ", ".join(f"{k}={v:g}" for k, v in {**values, **regime.symbols()}.items())
        click.echo(f"  regime {regime.kind}" + (f" ({shown})" if shown else ""))
    for name, entry in thresholds(inv, regime, values).items():
        if "value" in entry:
            click.echo(f"  {name}: {getattr(inv.params, name)}")
            continue
        for label, formula in entry["formulas"].items():
            head = f"  {name}" + (f" [{label}]" if label else "")
            form = formula["evaluated"]
            click.echo(f"{head}: {formula['source']}" + (f"  →  {form}" if form else ""))
    for tid in inv.falsified_by:
        click.echo(f"  falsified by {tid}")


def show_rule(rule: DecisionRule) -> None:
    """Print one decision rule: its arms, metrics (and where each is read), deltas, tie test,
    branches in order, falsifiers; ``contracts decide`` applies it."""
    click.echo(f"\n{rule.id}  {rule.title}  (decision rule: contracts decide {rule.id})")
    if rule.description:
        click.echo(f"  {' '.join(rule.description.split())}")
    if rule.arms is not None:
        click.echo(f"  arms: a = {rule.arms.a}; b = {rule.arms.b}")
    for name, metric in rule.metrics.items():
        better = "higher" if metric.higher_is_better else "lower"
        read = ", ".join(f"{role} {s.file}:{s.field}" for role, s in metric.sources())
        click.echo(f"  metric {name}: {metric.kind}, {better} is better; {read}")
    for name, metric_name in rule.deltas.items():
        click.echo(f"  delta {name} = {metric_name} A − B")
    if rule.tie is not None:
        tie = rule.tie
        click.echo(f"  tie test on {tie.metric}: alpha {tie.alpha:g}, power {tie.power:g}")
    width = max(len(b.verdict) for b in rule.branches)
    for i, branch in enumerate(rule.branches, start=1):
        when = f"when {branch.when.source}" if branch.when is not None else "otherwise"
        click.echo(f"  {i}. {branch.verdict:<{width}}  {when}")
    for tid in rule.falsified_by:
        click.echo(f"  falsified by {tid}")


def show_json(target: Target, regime: Regime | None, values: dict[str, float]) -> dict[str, Any]:
    """What ``show`` prints, as plain JSON values with stable keys."""
    c = target.contract
    return {
        "contract": {
            "id": c.contract,
            "version": c.version,
            "ref": c.ref,
            "title": c.title,
            "status": c.status,
        },
        "file": target.loaded.display,
        "regime": None if regime is None else regime.model_dump(mode="json"),
        "gates": [gate_json(g) for g in target.gates()],
        "invariants": [
            {
                **invariant_json(inv),
                "params": thresholds(inv, regime, values),
                "falsified_by": list(inv.falsified_by),
            }
            for inv in target.invariants()
        ],
        "decisions": [rule.model_dump(mode="json") for rule in target.decisions()],
    }
