"""``trainer``: gated pretraining (``pretrain``) and ONNX export with parity (``export``).

Exit codes: 0 success (an early stop by a ``stop`` invariant included: the verdict line says
``early_stop``), 3 a contract aborted the run (the message names the invariant),
2 bad usage or bad input (a missing ``traingate[train]`` package included), 128 + the signal's
number for a run a signal stopped (130 SIGINT, 143 SIGTERM; it saved a checkpoint and its
verdict first), 1 anything else.

At its end a run prints one verdict line and where its run dir is; ``--table`` adds the gate
table that ``contracts check RUN_DIR`` prints.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from traingate_cli.usage import InterruptibleGroup, fail

if TYPE_CHECKING:
    from traingate.runtime.verdict import Verdict

EXIT_ABORTED = 3
PROG = "trainer"
# The top-level packages of the ``train`` extra: a command missing one fails as bad usage.
TRAIN_EXTRA = frozenset(
    {"torch", "numpy", "pyarrow", "tokenizers", "onnxruntime", "onnx", "onnxscript"}
)


@contextlib.contextmanager
def train_extra(command: str) -> Iterator[None]:
    """Turn a missing ``traingate[train]`` package into one line and exit 2.

    Only a ``ModuleNotFoundError`` for one of :data:`TRAIN_EXTRA` itself is caught: any
    other missing module (traingate's own, or a submodule of an installed but broken
    package) is a bug and keeps its traceback.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name not in TRAIN_EXTRA:
            raise
        fail(
            PROG,
            f"error: {exc.name} is not installed; {command} needs the 'train' extra: "
            "pip install 'traingate[train]'",
        )


def gate_table(verdict: Verdict, run_dir: Path) -> str:
    """The end-of-run table, as ``contracts check`` renders it, and the verdict line."""
    from traingate.ci.render import render_text
    from traingate.ci.runcheck import judge_verdict

    return f"{render_text(judge_verdict(verdict, run_dir))}\n{verdict_line(verdict, run_dir)}"


def verdict_line(verdict: Verdict, run_dir: Path) -> str:
    """``verdict: FAIL — 6/7 invariants passed, 126 evaluations; INV-TRAIN-003: never …``."""
    from traingate.ci.runcheck import judge_verdict
    from traingate.runtime.verdict import where

    check = judge_verdict(verdict, run_dir)
    passed = sum(1 for inv in check.invariants if inv.outcome == "pass")
    line = (
        f"verdict: {'PASS' if verdict.ok else 'FAIL'} — {passed}/{len(check.invariants)} "
        f"invariants passed, {verdict.evaluations} evaluations"
    )
    if verdict.early_stop is not None:  # status early_stop: no failure, said on the line
        stop = verdict.early_stop
        line += f"; early_stop{where(stop.step, stop.epoch)} by {stop.invariant}"
    if check.failures:
        more = len(check.failures) - 1
        line += f"; {check.failures[0]}" + (f" (and {more} more)" if more else "")
    return line


def verdict_report(verdict: Verdict, run_dir: Path, table: bool) -> str:
    """The gate table and verdict line (``table``), or the verdict line alone."""
    return gate_table(verdict, run_dir) if table else verdict_line(verdict, run_dir)


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traingate")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Train language models with traingate contracts enforced."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )


@cli.command()
@click.option(
    "--mode",
    metavar="NAME",
    required=True,
    help="A mode the enforced contracts declare (shipped: from-scratch, finetune); its row "
    "sets the regime, lr, warm-up and target val loss together (an explicit flag wins).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Parquet shard, .txt file or folder of either (default: built-in stdlib corpus).",
)
@click.option("--text-column", default="text", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("runs/pretrain"),
    show_default=True,
    help="Run directory.",
)
@click.option("--max-steps", type=click.IntRange(min=1), default=400, show_default=True)
@click.option(
    "--model",
    type=click.Choice(["tiny", "small", "base"]),
    default="tiny",
    show_default=True,
)
@click.option(
    "--tokenizer", type=click.Choice(["bytes", "bpe"]), default="bytes", show_default=True
)
@click.option("--vocab-size", type=click.IntRange(min=2), default=None, help="BPE vocabulary size.")
@click.option("--pad-vocab", is_flag=True, help="Keep all --vocab-size ids, learned or not.")
@click.option(
    "--init-from",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Checkpoint to load weights (and tokenizer) from.",
)
@click.option("--resume", type=click.Choice(["auto", "never"]), default="never", show_default=True)
@click.option(
    "--allow-config-change",
    is_flag=True,
    help="Let --resume auto change the mode, lr, contracts… (recorded in the evidence).",
)
@click.option("--seed", type=int, default=1337, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--contracts",
    "contracts",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Contract files/folders (default: the shipped pretraining contracts).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="INV-ID",
    help="Enforce only these invariants (default: every invariant of the contracts).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--block-size",
    type=click.IntRange(min=2),
    default=None,
    help="Context length (default: preset).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak lr (default: by mode).",
)
@click.option(
    "--warmup", type=click.IntRange(min=1), default=None, help="Warm-up steps (default: by mode)."
)
@click.option(
    "--target-val-loss", type=float, default=None, help="Reported target (default: by mode)."
)
@click.option(
    "--eval-every", type=click.IntRange(min=1), default=None, help="Validate every N steps."
)
@click.option("--eval-blocks", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--val-percent",
    type=click.FloatRange(1, 50),
    default=5.0,
    show_default=True,
    help="Percent of the documents held out for validation (each by a hash of its text).",
)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None)
@click.option("--no-export", is_flag=True, help="Skip the ONNX export and its parity invariant.")
@click.option(
    "--reference",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="A reference run dir: reproducible invariants (C-TRAIN-REPRODUCIBLE) compare this "
    "run's first steps with its metrics.parquet.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--table", is_flag=True, help="End with the gate table (as `contracts check` prints it)."
)
def pretrain(table: bool, **opts: Any) -> None:
    """Pretrain (from scratch) or finetune a GPT with every contract enforced."""
    with train_extra("pretrain"):
        from traingate.contract.shipped import ContractError
        from traingate.runtime.evidence import RunDirError
        from traingate.runtime.guard import InvariantViolation
        from traingate.train.checkpoint import CheckpointError
        from traingate.train.config import PretrainConfig, UsageError
        from traingate.train.data import DataError
        from traingate.train.pretrain import pretrain as run

        if not opts["no_export"]:  # its packages are checked now, not after training
            import traingate.train.onnx_export  # noqa: F401

    fields = dict(opts)  # the options are named after PretrainConfig's fields
    fields["resume"] = fields["resume"] == "auto"
    fields["export_onnx"] = not fields.pop("no_export")
    fields["contracts"] = list(fields["contracts"]) or None
    fields["only"] = list(fields["only"]) or None
    cfg = PretrainConfig(**fields)
    try:
        with train_extra("pretrain"):
            result = run(cfg)
    except InvariantViolation as violation:
        click.echo(
            f"\nrun aborted by {violation.invariant_id} ({violation.contract}):\n{violation}",
            err=True,
        )
        _print_verdict(cfg.out, table)
        sys.exit(EXIT_ABORTED)
    except (UsageError, DataError, ContractError, CheckpointError, RunDirError, ValueError) as exc:
        fail(PROG, str(exc))
    click.echo(verdict_report(result.verdict, cfg.out, table))
    click.echo(
        f"run dir: {cfg.out}  (steps {result.steps}, checkpoints in {cfg.out / 'checkpoints'})"
        + ("" if table else f"; the gate table: contracts check {cfg.out}")
    )
    if result.onnx_path is not None:
        click.echo(
            f"onnx: {result.onnx_path}  max |logit diff| vs torch = {result.onnx_max_abs_diff:.2e}"
        )
    if result.interrupted:
        sys.exit(128 + (result.signum or 0))
    sys.exit(0 if result.verdict.ok else EXIT_ABORTED)


def _print_verdict(run_dir: Path, table: bool) -> None:
    from traingate.runtime.evidence import RunDirError
    from traingate.runtime.verdict import load_verdict

    with contextlib.suppress(RunDirError):
        click.echo(verdict_report(load_verdict(run_dir), run_dir, table))
        click.echo(f"run dir: {run_dir}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Output file (default: RUN_DIR/model.onnx).",
)
@click.option(
    "--force", is_flag=True, help="Overwrite an existing ONNX file and RUN_DIR/export/ verdict."
)
def export(run_dir: Path, onnx_path: Path | None, force: bool) -> None:
    """Export a run's latest checkpoint to ONNX and check parity with onnxruntime.

    The parity check (INV-EXPORT-001) is judged in the run's regime and recorded in
    RUN_DIR/export/ (evidence.jsonl, verdict.json, metrics.parquet), apart from the training
    run's own verdict. An existing ONNX file or export verdict is kept unless --force.
    """
    with train_extra("export"):
        from traingate.runtime.guard import InvariantViolation
        from traingate.train.onnx_export import ExportError, export_run

    try:
        with train_extra("export"):
            path, diff, verdict = export_run(run_dir, onnx_path, force=force)
    except ExportError as exc:
        fail(PROG, str(exc))
    except InvariantViolation as violation:
        click.echo(f"export failed its contract:\n{violation}", err=True)
        sys.exit(EXIT_ABORTED)
    status = "PASS" if verdict.ok else "FAIL"
    click.echo(f"onnx: {path}  max |logit diff| vs torch = {diff:.2e}  ({status})")
    sys.exit(0 if verdict.ok else EXIT_ABORTED)


def main() -> None:
    cli(prog_name=PROG)


if __name__ == "__main__":
    main()
