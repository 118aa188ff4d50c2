"""``import``: convert a contract in another format (pv) into a traingate contract file.

``contracts import FILE --from pv [--out PATH] [--force] [--root DIR]`` writes the
traingate contract atomically to ``--out`` (default ``<stem>.traingate.yaml`` beside FILE;
an existing file only with ``--force``), validates what it wrote, and prints one row per
source id: mapped, or needs a human and why. Exit codes: 0 written and valid (warnings
allowed), 1 written with validation errors, 2 unreadable or unconvertible input, or an
existing ``--out`` without ``--force``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from traingate.contract.loading import LoadError, read_located
from traingate.contract.pv_import import Imported, import_pv
from traingate.contract.pv_mapping import DRAFT, PvImportError
from traingate.contract.testids import find_root, problem_with_test_id
from traingate.contract.triage import group_findings
from traingate.files import atomic_write_text
from traingate_cli.common import PROG, load_report, out_file_option
from traingate_cli.usage import fail

ROOT_HELP = "Folder test ids are relative to (default: nearest ancestor of --out with falsifiers/)."
RESULT = {
    "mapped": "mapped",
    "draft": "needs a human (draft)",
    "skipped": "needs a human (not imported)",
}


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line text as ``|`` blocks: a file a person reviews next."""


def _text(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(imported: Imported, source: Path) -> str:
    """The contract file's text: a header saying where it came from, then the YAML."""
    human = len(imported.needs_human())
    header = (
        f"# Imported from {source.name} by `contracts import --from pv`: "
        f"{len(imported.rows) - human} source entries mapped, {human} need a human\n"
        f"# (titles marked {DRAFT}; the description lists what was not imported).\n"
    )
    body = yaml.dump(
        imported.contract, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=96
    )
    return header + body


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--from", "source_format", type=click.Choice(["pv"]), required=True, help="FILE's format."
)
@out_file_option("--out", "Where to write (default: <stem>.traingate.yaml beside FILE).")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists.")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), help=ROOT_HELP)
def import_cmd(
    file: Path, source_format: str, out: Path | None, force: bool, root: Path | None
) -> None:
    """Convert a pv-format contract into a traingate contract, then validate it."""
    del source_format  # one format today: pv
    target = out or file.with_name(f"{file.stem}.traingate.yaml")
    if target.exists() and not force:
        fail(PROG, f"{target} exists: pass --force to overwrite it")
    try:
        located = read_located(file, str(file))
    except LoadError as exc:
        fail(PROG, str(exc))
    base = root or find_root(target.parent)
    try:
        imported = import_pv(
            located.data, resolves=lambda tid: problem_with_test_id(tid, base) is None
        )
    except PvImportError as exc:
        mark = located.mark(exc.loc)
        fail(PROG, f"{file}:{mark.line}:{mark.column}: {exc}")
    atomic_write_text(target, render(imported, file))
    report = load_report([target], root)
    for group in group_findings(report.findings):
        click.echo(group.text())
    width = max(len(row.source_id) for row in imported.rows)
    click.echo(f"{'source id':<{width}}  {'result':<28}  traingate / why")
    for row in imported.rows:
        why = f"  ({row.note})" if row.note else ""
        click.echo(f"{row.source_id:<{width}}  {RESULT[row.status]:<28}  {row.target or '-'}{why}")
    human = len(imported.needs_human())
    click.echo(
        f"wrote {target}: {len(imported.rows) - human} mapped, {human} need a human · "
        f"{report.summary()}"
    )
    sys.exit(0 if report.ok() else 1)
