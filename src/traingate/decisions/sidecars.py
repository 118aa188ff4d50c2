"""Reading a decision rule's numbers from the JSON/JSONL sidecars inside each run directory.

Numbers are read exactly (decimals stay decimals, then Fractions), never typed by hand, and
every failure names the run, the file and the field, so a verdict traces back to its input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from traingate.contract.decision_rule import DecisionRule, Role, Source, field_parts
from traingate.contract.findings import suggest
from traingate.errors import TraingateError

MAX_SIDECAR_BYTES = 64 * 1024 * 1024
MAX_EXPONENT = 300  # numbers read from sidecars stay well inside float range


class DecisionError(TraingateError):
    """A number the rule needs could not be read or used; names the run, file and field."""

    def __init__(self, message: str, *, run: str = "", file: str = "", field: str = "") -> None:
        super().__init__(message)
        self.run = run
        self.file = file
        self.field = field


@dataclass(frozen=True)
class Reading:
    """One number read from a run: which metric and role, the file and field, as written."""

    run: str  # "A" or "B"
    metric: str
    role: Role
    path: str  # run directory / file, as given
    file: str
    field: str
    raw: str  # the number as written in the file
    exact: Fraction

    @property
    def value(self) -> float:
        return float(self.exact)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "metric": self.metric,
            "role": self.role,
            "path": self.path,
            "file": self.file,
            "field": self.field,
            "raw": self.raw,
            "value": self.value,
        }


def _load_sidecar(path: Path, shown: str) -> Any:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise DecisionError(f"{shown}: larger than {MAX_SIDECAR_BYTES} bytes", file=shown)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DecisionError(f"{shown}: no such file", file=shown) from None
    except IsADirectoryError:
        raise DecisionError(f"{shown}: is a directory", file=shown) from None
    except UnicodeDecodeError as exc:
        raise DecisionError(f"{shown}: not UTF-8 text (byte {exc.start})", file=shown) from None
    except OSError as exc:
        raise DecisionError(f"{shown}: cannot read ({exc.strerror})", file=shown) from None
    line_no = 1
    if path.suffix == ".jsonl":
        records = [(i, line) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
        if not records:
            raise DecisionError(f"{shown}: has no records", file=shown)
        line_no, text = records[-1]
    try:
        # exact numbers: decimals stay decimals; NaN/Infinity stay text and are refused later
        return json.loads(text, parse_float=Decimal, parse_constant=str)
    except json.JSONDecodeError as exc:
        where = f"line {line_no}" if path.suffix == ".jsonl" else f"line {exc.lineno}"
        raise DecisionError(
            f"{shown}: not valid JSON ({where}, column {exc.colno}: {exc.msg})", file=shown
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DecisionError(f"{shown}: cannot be parsed as JSON ({problem})", file=shown) from None


def _walk(data: Any, source: Source, shown: str) -> Any:
    here: Any = data
    for part in field_parts(source.field):
        problem = None
        if isinstance(part, int):
            if not isinstance(here, list):
                problem = f"`[{part}]` indexes a {type(here).__name__}, not a list"
            elif part >= len(here):
                problem = f"index [{part}] is past the end (length {len(here)})"
        elif not isinstance(here, dict):
            problem = f"`{part}` is looked up in a {type(here).__name__}, not an object"
        elif part not in here:
            problem = f"no key `{part}`{suggest(part, [str(k) for k in here])}"
        if problem:
            raise DecisionError(
                f"{shown}: field `{source.field}`: {problem}", file=shown, field=source.field
            )
        here = here[part]
    return here


def _as_number(value: Any, source: Source, shown: str) -> tuple[Fraction, str]:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        got = json.dumps(value, default=str)
        if len(got) > 60:
            got = got[:57] + "..."
        raise DecisionError(
            f"{shown}: field `{source.field}` is not a finite number (got {got})",
            file=shown,
            field=source.field,
        )
    magnitude = value.adjusted() if isinstance(value, Decimal) else len(str(abs(value))) - 1
    if value != 0 and abs(magnitude) > MAX_EXPONENT:
        raise DecisionError(
            f"{shown}: field `{source.field}` is out of range (|exponent| > {MAX_EXPONENT})",
            file=shown,
            field=source.field,
        )
    return Fraction(value), str(value)


def read_run(rule: DecisionRule, run_dir: Path, run: Literal["A", "B"]) -> list[Reading]:
    """Read every number ``rule`` needs from ``run_dir``; raise DecisionError naming what failed."""
    if not run_dir.is_dir():
        raise DecisionError(f"run {run}: {run_dir}: no such run directory", run=run)
    root = run_dir.resolve()
    cache: dict[str, Any] = {}
    readings: list[Reading] = []
    for name, metric in rule.metrics.items():
        for role, source in metric.sources():
            shown = str(run_dir / source.file)
            try:
                target = (run_dir / source.file).resolve()
                if not target.is_relative_to(root):
                    raise DecisionError(f"{shown}: resolves outside the run directory", file=shown)
                if source.file not in cache:
                    cache[source.file] = _load_sidecar(target, shown)
                exact, raw = _as_number(_walk(cache[source.file], source, shown), source, shown)
            except DecisionError as exc:
                needed = "" if exc.field else f" (needed for {name}: field `{source.field}`)"
                raise DecisionError(
                    f"run {run}: {exc}{needed}", run=run, file=shown, field=source.field
                ) from None
            readings.append(Reading(run, name, role, shown, source.file, source.field, raw, exact))
    return readings
