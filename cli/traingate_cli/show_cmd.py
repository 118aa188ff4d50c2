"""``show``: a contract, invariant or gate, with its thresholds evaluated for a regime."""

from __future__ import annotations

from pathlib import Path

import click

from traingate.contract.formula import FormulaError
from traingate.contract.loading import LoadedContract, suggest
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.schema import Contract, Invariant
from traingate.contract.thresholds import RegimeThreshold, iter_formulas
from traingate.contract.validation import Report
from traingate_cli.common import PROG, load_report, param_option, parse_params, regime_option
from traingate_cli.usage import fail


def find_target(report: Report, ident: str) -> tuple[LoadedContract, Contract, Invariant | None]:
    """The contract that defines ``ident`` (and the invariant, if it names one); exits 2 if none."""
    for lc in report.loaded:
        c = lc.contract
        if c is None:
            continue
        if c.contract == ident:
            return lc, c, None
        for inv in c.invariants:
            if inv.id == ident:
                return lc, c, inv
        for gate in c.gates:
            if gate.id == ident:
                return lc, c, None
    known = sorted(
        [lc.contract.contract for lc in report.loaded if lc.contract]
        + [i.id for lc in report.loaded if lc.contract for i in lc.contract.invariants]
        + [g.id for lc in report.loaded if lc.contract for g in lc.contract.gates]
    )
    fail(PROG, f"no contract, invariant or gate named {ident}{suggest(ident, known)}")


def chosen_regime(regime: str | None, values: dict[str, float]) -> Finetune | FromScratch | None:
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
def show(ident: str, paths: tuple[Path, ...], regime: str | None, params: tuple[str, ...]) -> None:
    """Show a contract, invariant or gate, with thresholds evaluated for a regime."""
    report = load_report(paths, None)
    lc, contract, inv = find_target(report, ident)
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
    invariants = (
        [inv]
        if inv
        else [
            i
            for i in contract.invariants
            if ident == contract.contract
            or any(ident == g.id and i.id in g.requires for g in contract.gates)
        ]
    )
    click.echo(f"{contract.ref}  {contract.title}  [{contract.status}]  {lc.display}")
    for gate in contract.gates:
        if ident in (contract.contract, gate.id) or (inv is not None and inv.id in gate.requires):
            blocking = "ship-blocking" if gate.ship_blocking else "advisory"
            click.echo(f"gate {gate.id}: requires {', '.join(gate.requires)} ({blocking})")
    for item in invariants:
        show_invariant(item, chosen, values)


def show_invariant(
    inv: Invariant, regime: Finetune | FromScratch | None, values: dict[str, float]
) -> None:
    """Print one invariant: its check, each param (formulas evaluated), its falsifiers."""
    click.echo(f"\n{inv.id}  {inv.title}")
    click.echo(f"  check {inv.check} at {inv.at}; on violation: {inv.on_violation}")
    if regime is not None:
        shown = ", ".join(f"{k}={v:g}" for k, v in {**values, **regime.symbols()}.items())
        click.echo(f"  regime {regime.kind}" + (f" ({shown})" if shown else ""))
    for name in type(inv.params).model_fields:
        value = getattr(inv.params, name)
        formulas = iter_formulas(value)
        if not formulas:
            click.echo(f"  {name}: {value}")
            continue
        if isinstance(value, RegimeThreshold):
            forms = {"finetune": value.finetune, "from_scratch": value.from_scratch}
            if regime is not None:
                forms = {regime.kind: value.for_regime(regime)}
        else:
            forms = {"": formulas[0][1]} if len(formulas) == 1 else {str(p): f for p, f in formulas}
        for label, formula in forms.items():
            head = f"  {name}" + (f" [{label}]" if label else "")
            scope = {**values, **(regime.symbols() if regime else {})}
            try:
                click.echo(f"{head}: {formula.source}  →  {formula.evaluated_form(scope)}")
            except FormulaError:
                click.echo(f"{head}: {formula.source}")
    for tid in inv.falsified_by:
        click.echo(f"  falsified by {tid}")
