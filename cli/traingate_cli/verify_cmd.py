"""``verify``: run every falsifier and evidence test (or, with ``--mutants``, mutation-test them).

Exit codes: 0 every ship-blocking gate discharged (every mutant killed), 1 otherwise, on
validation errors or when pytest cannot collect a test file (its error is shown, not a list
of "missing" tests), 2 unreadable input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from traingate.contract.triage import group_findings
from traingate_cli.common import PROG, format_option, load_report
from traingate_cli.usage import fail


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--mutants", is_flag=True, help="Mutation-test the falsifiers: every mutant must be killed."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: os.cpu_count() or 2,
    show_default="CPU count",
    help="Parallel worker processes for --mutants.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="With --mutants: run every mutant in its own pytest process (slow; the reference "
    "the default in-process path falls back on).",
)
def verify(
    paths: tuple[Path, ...],
    fmt: str,
    root: Path | None,
    mutants: bool,
    workers: int,
    fresh: bool,
) -> None:
    """Run every falsifier and evidence test; derive invariant and gate status from them."""
    from traingate.ci.verify import verify as run_verify

    report = load_report(paths, root)
    if report.errors:
        for group in group_findings(report.errors):
            click.echo(group.text(), err=True)
        fail(PROG, f"{len(report.errors)} validation errors; fix them before verify", code=1)
    if mutants:
        from traingate.ci.mutants.results import render_text
        from traingate.ci.mutants.running import run_mutation

        mutation = run_mutation(report.loaded, root, workers, fresh=fresh)
        click.echo(
            json.dumps(mutation.to_dict(), indent=2) if fmt == "json" else render_text(mutation)
        )
        sys.exit(0 if mutation.ok else 1)
    result = run_verify(report.loaded, root)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    if result.collection_errors:
        collection_failed(result.collection_errors)
    if fmt != "json":
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
        for gate_id, refs in result.external.items():
            for ref in refs:
                click.echo(f"  external: {ref}  ({gate_id}: never run here, never discharged)")
        passed = sum(1 for o in result.tests.values() if o == "passed")
        click.echo(f"{passed} passed, {len(result.tests) - passed} failed")
    sys.exit(0 if result.ok else 1)


def collection_failed(errors: dict[str, str]) -> NoReturn:
    """Show pytest's text for each file it could not collect, on stderr, and exit 1."""
    for node, text in errors.items():
        heading = node if node.startswith("pytest ") else f"collecting {node}"
        click.echo(f"ERROR {heading}\n{text}\n", err=True)
    fail(
        PROG,
        f"pytest collection failed ({len(errors)} errors): no falsifier or evidence test ran; "
        "fix the errors above",
        code=1,
    )
