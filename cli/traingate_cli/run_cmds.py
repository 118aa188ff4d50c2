"""``check``, ``audit`` and ``report``: the CI-facing commands on run directories.

Exit codes: 0 the run may ship, 1 invariant failures (a ship-blocking invariant failed or
was never evaluated, nothing was evaluated, or the run crashed), 2 usage or unreadable
input. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from traingate.ci.audit.tables import FORMATS as LOG_FORMATS
from traingate.ci.derive import expected_contracts
from traingate.ci.render import RENDERERS
from traingate.ci.runcheck import RunCheck, RunDirError, check_against, check_run
from traingate.contract.loading import LoadError
from traingate.runtime.verdict import load_verdict
from traingate_cli.common import (
    PROG,
    F,
    assignments,
    contracts_option,
    default_paths,
    format_option,
    out_file_option,
    param_option,
    parse_params,
    regime_option,
)
from traingate_cli.usage import fail

FORMATS = sorted(RENDERERS)


def reference_option(text: str) -> Callable[[F], F]:
    """``--reference PATH``: what the ``reproducible`` invariants compare with."""
    return click.option("--reference", type=click.Path(path_type=Path), default=None, help=text)


def _emit(check: RunCheck, fmt: str, out: Path | None) -> None:
    """Print ``fmt`` (or write it to ``out`` and print the one-line summary), then exit."""
    rendered = RENDERERS[fmt](check)
    if out is None:
        click.echo(rendered)
    else:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(rendered if rendered.endswith("\n") else rendered + "\n", "utf-8")
        except OSError as exc:
            fail(f"{PROG} check", f"{out}: cannot write ({exc.strerror or exc})")
        click.echo(RENDERERS["text"](check).splitlines()[-1] + f" ({fmt} written to {out})")
    sys.exit(check.exit_code)


@click.command("check")
@click.argument("run_dir", type=click.Path(path_type=Path))
@contracts_option(
    "Contracts the run must have been gated by, each in the same version and text "
    "(default: ./contracts or the shipped ones, compared where the run used them)."
)
@format_option(*FORMATS)
@out_file_option("--out", "Write the report to FILE (e.g. junit.xml) and print a one-line summary.")
@reference_option(
    "A reference run dir: re-decide the contracts' reproducible invariants from both runs' "
    "metrics.parquet (a violation fails the check)."
)
def check(
    run_dir: Path,
    contract_paths: tuple[Path, ...],
    fmt: str,
    out: Path | None,
    reference: Path | None,
) -> None:
    """Gate a run dir in CI: re-derive its verdict from the hash-chained evidence and exit 1
    unless it is consistent and every ship-blocking invariant passed."""
    from traingate.ci.reproduce import with_reference

    try:
        claimed = load_verdict(run_dir)
        expected = expected_contracts(default_paths(list(contract_paths)))
        result = check_against(run_dir, claimed, expected, require_all=bool(contract_paths))
        if reference is not None:
            result = with_reference(result, reference, expected)
    except (RunDirError, LoadError) as exc:
        fail(f"{PROG} check", str(exc))
    _emit(result, fmt, out)


@click.command("audit")
@click.argument("metrics", type=click.Path(path_type=Path))
@contracts_option("Contract file or folder (repeatable; default: the shipped contracts).")
@regime_option("finetune")
@param_option()
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=OBSERVATION",
    help="Map a column to an observation (repeatable): loss, grad_norm, val_loss, step, "
    "epoch, components.NAME, val_components.NAME, or any extra metric; COLUMN alone maps "
    "it to the observation of the same name.",
)
@click.option(
    "--only", multiple=True, metavar="ID", help="Replay only these invariants (repeatable)."
)
@click.option(
    "--where",
    "wheres",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Replay only rows whose COLUMN equals VALUE (repeatable), e.g. phase=val.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", *LOG_FORMATS]),
    default="auto",
    show_default=True,
    help="The log's format; auto: from the path (suffix; a TensorBoard events.out.tfevents.* "
    "file or folder, an MLflow run folder, trainer_state.json, a Lightning metrics.csv).",
)
@click.option(
    "--validation-index",
    type=click.Choice(["auto", "column", "nth"]),
    default="auto",
    show_default=True,
    help="column: the column mapped to epoch numbers validation passes; nth: the n-th "
    "validation row (from 0) does; auto: nth for Lightning and Hugging Face logs.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run dir to write (default: ./audit-<stem>, numbered if it exists).",
)
@reference_option(
    "A reference run dir, or a log of the same format and mapping: reproducible invariants "
    "compare the replayed steps with its steps."
)
@format_option(*FORMATS)
@out_file_option("--report-out", "Write the --format output to this file instead of stdout.")
def audit(
    metrics: Path,
    contract_paths: tuple[Path, ...],
    regime: str,
    params: tuple[str, ...],
    maps: tuple[str, ...],
    only: tuple[str, ...],
    wheres: tuple[str, ...],
    log_format: str,
    validation_index: str,
    out: Path | None,
    fmt: str,
    report_out: Path | None,
    reference: Path | None,
) -> None:
    """Replay an existing metrics log (CSV, JSON lines, parquet, TensorBoard, MLflow,
    Hugging Face trainer_state.json, Lightning metrics.csv) through the Guard."""
    from traingate.ci.audit import AuditError, audit_metrics, parse_mapping
    from traingate.contract.loading import LoadError
    from traingate.contract.regime import regime_from_cli
    from traingate.contract.shipped import ContractError

    values = parse_params(params)
    where = assignments("--where", wheres, "COLUMN=VALUE")
    try:
        mapping = parse_mapping(maps)
        if not mapping:
            raise AuditError("map at least one column with --map COLUMN=OBSERVATION")
        vocab = values.get("vocab_size")
        chosen = regime_from_cli(regime, int(vocab) if vocab is not None else None)
        run_dir = out if out is not None else _default_out(metrics)
        audited = audit_metrics(
            metrics,
            list(contract_paths) or None,
            chosen,
            values,
            mapping,
            run_dir,
            only=list(only) or None,
            where=where,
            fmt=None if log_format == "auto" else log_format,
            validation_index=validation_index,
            reference=reference,
        )
        result = check_run(run_dir)
    except (AuditError, ContractError, LoadError, RunDirError, ValueError) as exc:
        fail(f"{PROG} audit", " ".join(str(exc).split("\n")[0].split()))
    except ModuleNotFoundError as exc:  # the one package audit needs beyond the core
        if exc.name != "pyarrow":
            raise
        fail(
            f"{PROG} audit",
            "error: pyarrow is not installed; audit needs the 'audit' extra: "
            "pip install 'traingate[audit]'",
        )
    click.echo(  # on stderr unless the output is the text table, so json/junit stay parseable
        _audit_summary(metrics, run_dir, audited.audit), err=fmt != "text" and report_out is None
    )
    _emit(result, fmt, report_out)


SHOWN_SKIPS = 10


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _audit_summary(metrics: Path, run_dir: Path, info: dict[str, Any]) -> str:
    """What the replay did: rows replayed, excluded by --where, skipped (each, with why)."""
    stop, skipped, excluded = info["stopped_at"], info["skipped_rows"], info["excluded"]
    early = info.get("early_stop_at")
    where = " ".join(f"{c}={v}" for c, v in info["where"].items())
    lines = [
        f"audited {metrics}: {info['replayed']} of {info['rows']} rows replayed into {run_dir}"
        + (f"; {_rows(excluded)} excluded by --where {where}" if excluded else "")
        + (f"; {_rows(len(skipped))} skipped" if skipped else "")
        + (f"; stopped at row {stop['row']} by {stop['invariant']}" if stop else "")
        + (f"; early stop at row {early['row']} by {early['invariant']}" if early else "")
    ]
    if info.get("validation_index") == "nth":
        lines.append("  validation index: the n-th validation row (not the epoch column)")
    lines += [f"  warning: {w}" for w in info.get("warnings", [])]
    for s in skipped[:SHOWN_SKIPS]:
        lines.append(
            f"  skipped row {s['row']}"
            + (f" (line {s['line']})" if s["line"] else "")
            + f": {s['why']}"
        )
    if len(skipped) > SHOWN_SKIPS:
        lines.append(
            f"  … and {len(skipped) - SHOWN_SKIPS} more, listed in {run_dir / 'audit.json'}"
        )
    return "\n".join(lines)


def _default_out(metrics: Path) -> Path:
    """``./audit-<stem>``, or ``-2``, ``-3``… when taken: an audit never overwrites a run."""
    base = Path.cwd() / f"audit-{metrics.stem}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@out_file_option(
    "--out", "HTML file to write (default: RUN_DIR/report.html); chart PNGs go beside it."
)
def report(run_dir: Path, out: Path | None) -> None:
    """Write a self-contained HTML report of a run dir (curves, limits, gates, invariants)."""
    from traingate.ci.report import render_report

    target = out if out is not None else run_dir / "report.html"
    try:
        written = render_report(run_dir, target)
    except RunDirError as exc:
        fail(f"{PROG} report", str(exc))
    except OSError as exc:
        fail(f"{PROG} report", f"{target}: cannot write ({exc.strerror or exc})")
    click.echo(f"wrote {written} (chart PNGs beside it: {written.stem}-*.png)")
