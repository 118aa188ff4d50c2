"""``contracts``: validate, list, show and verify traingate contracts.

Exit codes: 0 clean, 1 findings (or undischarged ship-blocking gates), 2 usage or
unreadable input. This command never imports torch: validating YAML starts fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from traingate.contract.findings import CODES
from traingate.contract.formula import FormulaError
from traingate.contract.loading import LoadedContract
from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.schema import Contract, Invariant
from traingate.contract.thresholds import RegimeThreshold, iter_formulas
from traingate.contract.validation import Report, validate_paths

DEFAULT_PATHS = (Path("contracts"),)


def _default_paths(paths: Sequence[Path]) -> list[Path]:
    if paths:
        return list(paths)
    if DEFAULT_PATHS[0].is_dir():
        return list(DEFAULT_PATHS)
    from traingate.contract.shipped import shipped_contracts_dir

    return [shipped_contracts_dir()]


def _fail_usage(message: str) -> None:
    click.echo(f"contracts: {message}", err=True)
    sys.exit(2)


def _load(paths: Sequence[Path], root: Path | None) -> Report:
    """Validate, exiting 2 with one line per unreadable input."""
    try:
        report = validate_paths(_default_paths(paths), root)
    except Exception as exc:  # a missing path and the like: one line, never a traceback
        from traingate.contract.loading import LoadError

        if isinstance(exc, LoadError):
            _fail_usage(str(exc))
        raise
    if report.fatal:
        for line in report.fatal:
            click.echo(f"contracts: {line}", err=True)
        sys.exit(2)
    return report


def parse_params(pairs: Sequence[str]) -> dict[str, float]:
    """``["vocab_size=50257"]`` → ``{"vocab_size": 50257.0}``; exits 2 on bad spelling."""
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            _fail_usage(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            values[name.strip()] = float(raw)
        except ValueError:
            _fail_usage(f"--param {name.strip()}: {raw!r} is not a number")
    return values


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traingate")
def cli() -> None:
    """Validate, inspect and verify traingate contracts."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
)
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder that test ids are relative to (default: nearest ancestor with falsifiers/).",
)
def validate(paths: tuple[Path, ...], strict: bool, fmt: str, root: Path | None) -> None:
    """Validate contract files (default: ./contracts, else the shipped contracts)."""
    report = _load(paths, root)
    findings = sorted(report.findings, key=lambda f: (f.file, f.line, f.column, f.code))
    if fmt == "json":
        payload = {
            "summary": report.counts(),
            "ok": report.ok(strict),
            "findings": [f.to_dict() for f in findings],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        for f in findings:
            click.echo(f.github() if fmt == "github" else f.text())
        click.echo(report.summary())
    sys.exit(0 if report.ok(strict) else 1)


@cli.command("list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def list_cmd(paths: tuple[Path, ...]) -> None:
    """List contracts with their invariants and gates."""
    report = _load(paths, None)
    for lc in report.loaded:
        c = lc.contract
        if c is None:
            click.echo(
                f"{lc.display}: invalid ({len(lc.findings)} findings; run `contracts validate`)"
            )
            continue
        click.echo(f"{c.ref}  [{c.status}]  {c.title}  ({lc.display})")
        for inv in c.invariants:
            click.echo(
                f"  {inv.id:<16} {inv.check:<20} at {inv.at:<10} {inv.on_violation:<5}  {inv.title}"
            )
        for gate in c.gates:
            blocking = "ship-blocking" if gate.ship_blocking else "advisory"
            click.echo(f"  {gate.id:<16} requires {', '.join(gate.requires)}  ({blocking})")
    sys.exit(0 if not report.errors else 1)


def _find(report: Report, ident: str) -> tuple[LoadedContract, Contract, Invariant | None]:
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
    from traingate.contract.loading import suggest

    _fail_usage(f"no contract, invariant or gate named {ident}{suggest(ident, known)}")
    raise AssertionError  # unreachable: _fail_usage exits


@cli.command()
@click.argument("ident")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--regime",
    type=click.Choice(["finetune", "from-scratch"]),
    default=None,
    help="Evaluate thresholds for this regime.",
)
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Run parameter (repeatable)."
)
def show(ident: str, paths: tuple[Path, ...], regime: str | None, params: tuple[str, ...]) -> None:
    """Show a contract, invariant or gate, with thresholds evaluated for a regime."""
    report = _load(paths, None)
    lc, contract, inv = _find(report, ident)
    values = parse_params(params)
    for name, value in values.items():
        spec = contract.parameters.get(name)
        if spec is None:
            _fail_usage(
                f"--param {name}: {contract.contract} declares no such parameter "
                f"(declared: {', '.join(contract.parameters) or 'none'})"
            )
        try:
            spec.check_value(name, value)  # type: ignore[union-attr]
        except ValueError as exc:
            _fail_usage(str(exc))
    chosen: Finetune | FromScratch | None = None
    if regime == "finetune":
        chosen = Finetune()
    elif regime == "from-scratch":
        if "vocab_size" not in values:
            _fail_usage("--regime from-scratch needs --param vocab_size=N")
        chosen = FromScratch(int(values["vocab_size"]))
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
        _show_invariant(item, chosen, values)


def _show_invariant(
    inv: Invariant, regime: Finetune | FromScratch | None, values: dict[str, float]
) -> None:
    click.echo(f"\n{inv.id}  {inv.title}")
    click.echo(f"  check {inv.check} at {inv.at}; on violation: {inv.on_violation}")
    if regime is not None:
        shown = ", ".join(f"{k}={v:g}" for k, v in {**values, **regime.symbols()}.items())
        click.echo(f"  regime {regime.kind}" + (f" ({shown})" if shown else ""))
    if isinstance(inv.params, dict):
        return
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


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--mutants", is_flag=True, help="Mutation-test the falsifiers: every mutant must be killed."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Parallel pytest processes for --mutants.",
)
def verify(
    paths: tuple[Path, ...], fmt: str, root: Path | None, mutants: bool, workers: int
) -> None:
    """Run every falsifier and evidence test; derive invariant and gate status from them."""
    from traingate.ci.verify import verify as run_verify

    report = _load(paths, root)
    if report.errors:
        for f in report.errors:
            click.echo(f.text(), err=True)
        click.echo(
            f"contracts: {len(report.errors)} validation errors; fix them before verify", err=True
        )
        sys.exit(1)
    if mutants:
        from traingate.ci.mutants import render_text, run_mutation

        mutation = run_mutation(report.loaded, root, workers)
        click.echo(
            json.dumps(mutation.to_dict(), indent=2) if fmt == "json" else render_text(mutation)
        )
        sys.exit(0 if mutation.ok else 1)
    result = run_verify(report.loaded, root)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for inv_id, status in result.invariants.items():
            click.echo(f"{status:<11} {inv_id:<18} {result.contracts[inv_id]}")
        for rule_id, status in result.decisions.items():
            click.echo(f"{status:<11} {rule_id:<18} {result.contracts[rule_id]}  (decision rule)")
        for gate_id, status in result.gates.items():
            blocking = "ship-blocking" if result.ship_blocking[gate_id] else "advisory"
            click.echo(f"{status:<11} {gate_id:<18} {result.contracts[gate_id]}  ({blocking})")
        bad = {t: o for t, o in result.tests.items() if o != "passed"}
        for tid, outcome in sorted(bad.items()):
            click.echo(f"  {outcome}: {tid}")
        passed = sum(1 for o in result.tests.values() if o == "passed")
        click.echo(f"{passed} passed, {len(result.tests) - passed} failed")
    sys.exit(0 if result.ok else 1)


@cli.command()
def codes() -> None:
    """List the stable finding codes."""
    for code, meaning in CODES.items():
        click.echo(f"{code}  {meaning}")


def _register_commands() -> None:
    """Commands that live in their own modules (each imports nothing heavy at load)."""
    from traingate_cli.decide_cmd import decide
    from traingate_cli.run_cmds import audit, check, report

    for command in (check, audit, report, decide):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="contracts")


if __name__ == "__main__":
    main()
