"""``validate``, ``list`` and ``codes``: read contracts and report on them, never run anything.

Exit codes: 0 clean, 1 findings (errors, or warnings under ``--strict``), 2 unreadable input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from traingate.contract.findings import CODES
from traingate_cli.common import format_option, load_report


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@format_option("text", "json", "github")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder that test ids are relative to (default: nearest ancestor with falsifiers/).",
)
def validate(paths: tuple[Path, ...], strict: bool, fmt: str, root: Path | None) -> None:
    """Validate contract files (default: ./contracts, else the shipped contracts)."""
    report = load_report(paths, root)
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


@click.command("list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def list_cmd(paths: tuple[Path, ...]) -> None:
    """List contracts with their invariants and gates."""
    report = load_report(paths, None)
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


@click.command()
def codes() -> None:
    """List the stable finding codes."""
    for code, meaning in CODES.items():
        click.echo(f"{code}  {meaning}")
