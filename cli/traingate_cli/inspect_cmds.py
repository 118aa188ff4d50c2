"""``validate``, ``list`` and ``codes``: read contracts and report on them, never run anything.

Exit codes: 0 clean, 1 findings (errors, or warnings under ``--strict``; ``list``: no contract
file found), 2 unreadable input. ``list`` and ``codes`` take ``--format json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from traingate.contract.findings import CODES
from traingate.contract.loading import LoadedContract
from traingate.contract.triage import group_findings
from traingate_cli.common import (
    format_option,
    gate_json,
    invariant_json,
    load_report,
    no_contracts_found,
)


def echo_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON (``json`` is imported here: text output, the
    default, never needs it, and start-up does not pay for it)."""
    import json

    click.echo(json.dumps(payload, indent=2))


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
        echo_json(payload)
    elif fmt == "github":
        for f in findings:
            click.echo(f.github())
        click.echo(report.summary())
    else:  # text: findings repeated across entries on one line each, with a count
        for group in group_findings(findings):
            click.echo(group.text())
        click.echo(report.summary())
    sys.exit(0 if report.ok(strict) else 1)


@click.command("list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
def list_cmd(paths: tuple[Path, ...], fmt: str) -> None:
    """List contracts with their invariants, gates and decision rules."""
    report = load_report(paths, None)
    no_contracts_found(paths, report)
    if fmt == "json":
        payload = {"summary": report.counts(), "contracts": [listed(lc) for lc in report.loaded]}
        echo_json(payload)
        sys.exit(0 if not report.errors else 1)
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
        for rule in c.decisions:
            verdicts = " | ".join(dict.fromkeys(b.verdict for b in rule.branches))
            click.echo(f"  {rule.id:<16} decision → {verdicts}  {rule.title}")
    sys.exit(0 if not report.errors else 1)


def listed(lc: LoadedContract) -> dict[str, Any]:
    """One contract file as ``list --format json`` prints it (stable keys; ``valid`` false and
    the number of findings for a file that did not load)."""
    c = lc.contract
    if c is None:
        return {"file": lc.display, "valid": False, "findings": len(lc.findings)}
    return {
        "file": lc.display,
        "valid": True,
        "id": c.contract,
        "version": c.version,
        "ref": c.ref,
        "title": c.title,
        "status": c.status,
        "invariants": [invariant_json(inv) for inv in c.invariants],
        "gates": [gate_json(g) for g in c.gates],
        "decisions": [
            {
                "id": rule.id,
                "title": rule.title,
                "verdicts": list(dict.fromkeys(b.verdict for b in rule.branches)),
            }
            for rule in c.decisions
        ],
    }


@click.command()
@format_option("text", "json")
def codes(fmt: str) -> None:
    """List the stable finding codes."""
    if fmt == "json":
        entries = [{"code": code, "meaning": meaning} for code, meaning in CODES.items()]
        echo_json({"codes": entries})
        return
    for code, meaning in CODES.items():
        click.echo(f"{code}  {meaning}")
