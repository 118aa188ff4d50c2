"""What every ``contracts`` subcommand shares: default paths, loading, ``--param`` and options.

Every command module imports this one (and :mod:`traingate_cli.usage`), never another
command module, so the command line has no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from traingate.contract.loading import LoadError
from traingate.contract.schema import Gate, Invariant
from traingate.contract.validation import Report, validate_paths
from traingate_cli.usage import fail

PROG = "contracts"
DEFAULT_PATHS = (Path("contracts"),)

F = TypeVar("F", bound=Callable[..., Any])


def default_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths``, else ``./contracts`` when it exists, else the contracts shipped in the wheel."""
    if paths:
        return list(paths)
    if DEFAULT_PATHS[0].is_dir():
        return list(DEFAULT_PATHS)
    from traingate.contract.shipped import shipped_contracts_dir

    return [shipped_contracts_dir()]


def load_report(paths: Sequence[Path], root: Path | None) -> Report:
    """Validate, exiting 2 with one line per unreadable input (never a traceback)."""
    try:
        report = validate_paths(default_paths(paths), root)
    except LoadError as exc:  # a missing path and the like
        fail(PROG, str(exc))
    if report.fatal:
        *first, last = report.fatal
        for line in first:
            click.echo(f"{PROG}: {line}", err=True)
        fail(PROG, last)
    return report


def no_contracts_found(paths: Sequence[Path], report: Report) -> None:
    """``contracts: no contracts found in PATH`` and exit 1 when ``paths`` hold no contract
    file (validate reports it as TG160); else nothing."""
    if not report.loaded:
        shown = ", ".join(str(p) for p in default_paths(paths))
        fail(PROG, f"no contracts found in {shown}", code=1)


def gate_json(gate: Gate) -> dict[str, Any]:
    """A gate as JSON (``list`` and ``show``): id, requires, ship_blocking."""
    return {"id": gate.id, "requires": list(gate.requires), "ship_blocking": gate.ship_blocking}


def invariant_json(inv: Invariant) -> dict[str, Any]:
    """An invariant as JSON (``list``; ``show`` adds params and falsifiers)."""
    return {
        "id": inv.id,
        "title": inv.title,
        "check": inv.check,
        "at": inv.at,
        "on_violation": inv.on_violation,
    }


def assignments(option: str, pairs: Sequence[str], shape: str = "NAME=VALUE") -> dict[str, str]:
    """``["a=1", "b = x"]`` → ``{"a": "1", "b": "x"}`` for ``option``; exits 2 on bad spelling."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            fail(PROG, f"{option} expects {shape}, got {pair!r}")
        values[name.strip()] = raw.strip()
    return values


def parse_params(pairs: Sequence[str]) -> dict[str, float]:
    """``["vocab_size=50257"]`` → ``{"vocab_size": 50257.0}``; exits 2 on bad spelling."""
    values: dict[str, float] = {}
    for name, raw in assignments("--param", pairs).items():
        try:
            values[name] = float(raw)
        except ValueError:
            fail(PROG, f"--param {name}: {raw!r} is not a number")
    return values


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format`` (stored as ``fmt``) over ``choices``, defaulting to ``text``."""
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default="text", show_default=True
    )


def regime_option(default: str | None, help: str | None = None) -> Callable[[F], F]:
    """``--regime finetune|from-scratch``."""
    return click.option(
        "--regime",
        type=click.Choice(["finetune", "from-scratch"]),
        default=default,
        show_default=default is not None,
        help=help,
    )


def param_option() -> Callable[[F], F]:
    """``--param NAME=VALUE`` (repeatable), stored as ``params``; read it with parse_params."""
    return click.option(
        "--param", "params", multiple=True, metavar="NAME=VALUE", help="Run parameter (repeatable)."
    )


def contracts_option(help: str) -> Callable[[F], F]:
    """``--contracts PATH`` (repeatable), stored as ``contract_paths``."""
    return click.option(
        "--contracts", "contract_paths", multiple=True, type=click.Path(path_type=Path), help=help
    )


def out_file_option(name: str, help: str) -> Callable[[F], F]:
    """An output-file option such as ``--out``: a path that must not be a folder, or None."""
    return click.option(
        name, type=click.Path(path_type=Path, dir_okay=False), default=None, help=help
    )
