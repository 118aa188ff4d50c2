"""Pre-registered A/B decisions: a rule written in a contract, applied to two runs' sidecars.

A ``DecisionRule`` names metrics that are read from files inside each run directory (never
typed by hand), their A − B deltas (percentage points for rates), an optional
two-proportion tie test (pooled σ, |Δ|/σ and the minimum detectable effect) and ordered
branches whose predicates (comparisons joined by ``and``/``or``/``not``) pick a verdict.
``evaluate_rule`` reads the numbers, applies the rule, and returns everything it read and
decided, so a verdict can always be traced back to a file and a field.
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from traingate.contract.formula import FUNCTIONS, Formula, FormulaError, unparse
from traingate.contract.thresholds import located_formula_error

DECISION_ID = r"^DEC-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{3}$"
SYMBOL = r"^[a-z][a-z0-9_]*$"
VERDICT = r"^[A-Z][A-Z0-9_]*$"
FIELD_PATH = r"^(?:[^.\[\]\s]+|\[\d+\])(?:\.[^.\[\]\s]+|\[\d+\])*$"
TEST_ID = r"^[\w./-]+\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]]*\])?$"  # same shape as schema.TEST_ID
SIDECAR_SUFFIXES = (".json", ".jsonl")
MAX_PREDICATE_LENGTH = 2000
MAX_DEPTH = 40
MAX_SIDECAR_BYTES = 64 * 1024 * 1024
MAX_EXPONENT = 300  # numbers read from sidecars stay well inside float range

STATISTICS: dict[str, str] = {
    "sigma": "pooled σ of the tie metric's A − B difference (pp)",
    "sigma_unpooled": "unpooled σ of the tie metric's A − B difference (pp)",
    "z": "Δ/σ of the tie metric (signed; 0 when σ is 0)",
    "p_value": "two-sided p-value of z",
    "mde": "minimum detectable effect of the tie metric at the rule's α and power (pp)",
}

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
SymbolName = Annotated[str, StringConstraints(pattern=SYMBOL)]
VerdictName = Annotated[str, StringConstraints(pattern=VERDICT)]
TestId = Annotated[str, StringConstraints(pattern=TEST_ID)]
Role = Literal["successes", "trials", "value"]


class _Strict(BaseModel):
    """Unknown keys are errors, values are not coerced, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- where numbers come from -------------------------------------------------------------


def _check_sidecar_path(value: str) -> str:
    """A sidecar path is relative to the run directory, stays inside it, and is JSON(L)."""
    if not value.strip():
        raise PydanticCustomError("sidecar_path", "a sidecar path is needed")
    if "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise PydanticCustomError(
            "sidecar_path", "write sidecar paths with `/`, relative to the run directory"
        )
    path = PurePosixPath(value)
    if path.is_absolute():
        raise PydanticCustomError(
            "sidecar_path", "a sidecar path must be relative to the run directory, not absolute"
        )
    if ".." in path.parts:
        raise PydanticCustomError(
            "sidecar_path", "a sidecar path must stay inside the run directory (no `..`)"
        )
    if path.suffix not in SIDECAR_SUFFIXES:
        raise PydanticCustomError(
            "sidecar_path", "a sidecar is a .json file or a .jsonl file (its last record is read)"
        )
    return value


def field_parts(path: str) -> tuple[str | int, ...]:
    """Split a JSON path: ``runs[2].acc_at_1`` → ``("runs", 2, "acc_at_1")``."""
    parts: list[str | int] = []
    for match in re.finditer(r"\[(\d+)\]|([^.\[\]]+)", path):
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
    return tuple(parts)


class Source(_Strict):
    """Where one number lives: a JSON path (dotted keys, ``[i]`` indices) in a run's sidecar."""

    file: Annotated[str, AfterValidator(_check_sidecar_path)]
    field: Annotated[str, StringConstraints(pattern=FIELD_PATH)]


class Metric(_Strict):
    """A metric read from each run: a rate (successes/trials) or a single value."""

    kind: Literal["rate", "value"]
    higher_is_better: bool
    successes: Source | None = None
    trials: Source | None = None
    source: Source | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _sources_fit_kind(self) -> Metric:
        if self.kind == "rate":
            for name in ("successes", "trials"):
                if getattr(self, name) is None:
                    raise PydanticCustomError(
                        "metric_kind",
                        "a rate metric reads `successes` and `trials` ({{file, field}} each); "
                        "`{name}` is missing",
                        {"name": name},
                    )
            if self.source is not None:
                raise PydanticCustomError(
                    "metric_kind",
                    "a rate metric reads `successes` and `trials`; `source` is for kind: value",
                    {"subpath": "source"},
                )
        else:
            if self.source is None:
                raise PydanticCustomError(
                    "metric_kind", "a value metric reads `source` ({{file, field}}); it is missing"
                )
            for name in ("successes", "trials"):
                if getattr(self, name) is not None:
                    raise PydanticCustomError(
                        "metric_kind",
                        "`{name}` is for kind: rate; a value metric reads `source`",
                        {"name": name, "subpath": name},
                    )
        return self

    def sources(self) -> list[tuple[Role, Source]]:
        """(role, source) pairs: successes and trials for a rate, value for a value."""
        if self.kind == "rate":
            assert self.successes is not None and self.trials is not None
            return [("successes", self.successes), ("trials", self.trials)]
        assert self.source is not None
        return [("value", self.source)]


class TieTest(_Strict):
    """Two-proportion z-test on one rate metric, with the MDE at ``alpha`` and ``power``."""

    metric: SymbolName
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    power: float = Field(default=0.8, ge=0.5, lt=1.0)


class Arms(_Strict):
    """What runs A and B are (labels for reports only)."""

    a: Text
    b: Text


# --- predicates: comparisons joined by and / or / not -----------------------------------


@dataclass(frozen=True)
class Atom:
    """One comparison, parsed by :class:`Formula`; ``offset`` is its column in the predicate."""

    formula: Formula
    offset: int


@dataclass(frozen=True)
class Not:
    """``not X``."""

    operand: BoolNode


@dataclass(frozen=True)
class And:
    """``X and Y and ...``."""

    operands: tuple[BoolNode, ...]


@dataclass(frozen=True)
class Or:
    """``X or Y or ...``."""

    operands: tuple[BoolNode, ...]


BoolNode = Atom | Not | And | Or
_PRECEDENCE = {Or: 1, And: 2, Not: 3, Atom: 4}


def _char_column(text: str, byte_offset: int) -> int:
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore"))


def _to_bool(node: ast.AST, body: str, lead: int, depth: int) -> BoolNode:
    col = lead + _char_column(body, getattr(node, "col_offset", 0))
    if depth > MAX_DEPTH:
        raise FormulaError("predicate is nested too deeply", col)
    if isinstance(node, ast.BoolOp):
        operands = tuple(_to_bool(v, body, lead, depth + 1) for v in node.values)
        return And(operands) if isinstance(node.op, ast.And) else Or(operands)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_to_bool(node.operand, body, lead, depth + 1))
    if isinstance(node, ast.Compare):
        segment = ast.get_source_segment(body, node) or ""
        try:
            return Atom(Formula.parse(segment, predicate=True), col)
        except FormulaError as exc:
            raise FormulaError(exc.message, col + exc.column, exc.code) from None
    raise FormulaError(
        "each operand of `and`, `or` and `not` must be a comparison, e.g. `gap >= 1.0`", col
    )


@dataclass(frozen=True)
class Predicate:
    """A parsed branch condition: comparisons (traingate formulas) under and/or/not."""

    source: str
    tree: BoolNode

    def atoms(self) -> list[Atom]:
        """Every comparison, left to right."""
        found: list[Atom] = []

        def walk(n: BoolNode) -> None:
            if isinstance(n, Atom):
                found.append(n)
            elif isinstance(n, Not):
                walk(n.operand)
            else:
                for o in n.operands:
                    walk(o)

        walk(self.tree)
        return found

    def symbol_columns(self) -> dict[str, int]:
        """First column (in ``source``) at which each symbol appears."""
        cols: dict[str, int] = {}
        for atom in self.atoms():
            for name, col in sorted(atom.formula.symbol_columns().items(), key=lambda i: i[1]):
                cols.setdefault(name, atom.offset + col)
        return cols

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """Truth of the predicate; raises FormulaError for a missing symbol or a bad value."""

        def go(n: BoolNode) -> bool:
            if isinstance(n, Atom):
                return n.formula.evaluate(values) == 1.0
            if isinstance(n, Not):
                return not go(n.operand)
            results = [go(o) for o in n.operands]  # every comparison, for reporting
            return all(results) if isinstance(n, And) else any(results)

        return go(self.tree)

    def render(self, values: Mapping[str, float]) -> str:
        """The predicate with numbers substituted, each comparison tagged true/false."""

        def go(n: BoolNode, parent: int) -> str:
            prec = _PRECEDENCE[type(n)]
            if isinstance(n, Atom):
                truth = "true" if n.formula.evaluate(values) == 1.0 else "false"
                text = f"{unparse(n.formula.tree, values)} ({truth})"
            elif isinstance(n, Not):
                text = f"not {go(n.operand, prec)}"
            else:
                joiner = " and " if isinstance(n, And) else " or "
                text = joiner.join(go(o, prec + 1) for o in n.operands)
            return f"({text})" if prec < parent else text

        return go(self.tree, 0)

    def __str__(self) -> str:
        return self.source


def parse_predicate(text: str) -> Predicate:
    """Parse ``gap >= -0.5 and not (harness_delta < 0)``; errors carry their column."""
    if not isinstance(text, str):
        raise FormulaError(f"a predicate must be text, not {type(text).__name__}")
    if len(text) > MAX_PREDICATE_LENGTH:
        raise FormulaError(f"predicate is longer than {MAX_PREDICATE_LENGTH} characters")
    flat = text.replace("\r", " ").replace("\n", " ")
    body = flat.strip()
    if not body:
        raise FormulaError("predicate is empty")
    lead = len(flat) - len(flat.lstrip())
    try:
        expr = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(
            f"syntax error: {exc.msg}", lead + max((exc.offset or 1) - 1, 0)
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError("predicate cannot be parsed (too deep or malformed)", lead) from None
    return Predicate(text, _to_bool(expr, body, lead, 0))


def _to_predicate(value: Any) -> Predicate:
    if isinstance(value, Predicate):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "predicate_type", "a predicate is text such as `gap >= 1.0`, not a literal value"
        )
    try:
        return parse_predicate(value)
    except FormulaError as exc:
        raise located_formula_error(exc) from None


PredicateField = Annotated[
    Predicate,
    PlainValidator(_to_predicate),
    PlainSerializer(lambda p: p.source, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class Branch(_Strict):
    """``{when: PREDICATE, verdict: NAME}``, or ``{otherwise: true, verdict: NAME}`` last."""

    when: PredicateField | None = None
    otherwise: Literal[True] | None = None
    verdict: VerdictName

    @field_validator("verdict", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(
                "verdict_boolean",
                "YAML read this verdict as a boolean (NO, YES, ON, OFF, TRUE, FALSE are "
                'booleans in YAML): quote it, e.g. verdict: "NO"',
            )
        return value

    @model_validator(mode="after")
    def _one_condition(self) -> Branch:
        if (self.when is None) == (self.otherwise is None):
            raise PydanticCustomError(
                "branch", "a branch has either `when: <predicate>` or `otherwise: true`, not both"
            )
        return self


# --- the rule ----------------------------------------------------------------------------


def defined_symbols(
    metrics: Mapping[str, Metric], deltas: Mapping[str, str], tie: TieTest | None
) -> dict[str, str]:
    """Every symbol a predicate may name, with what it means."""
    out: dict[str, str] = {}
    for name, metric in metrics.items():
        unit = " (%)" if metric.kind == "rate" else ""
        out[f"{name}_a"] = f"{name} of run A{unit}"
        out[f"{name}_b"] = f"{name} of run B{unit}"
    for name, metric_name in deltas.items():
        metric = metrics.get(metric_name)
        unit = " (pp)" if metric is not None and metric.kind == "rate" else ""
        out[name] = f"{metric_name} A − B{unit}"
    if tie is not None:
        out.update(STATISTICS)
    return out


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _check_branch_symbols(branch: Branch, info: ValidationInfo) -> Branch:
    """Every symbol in ``when`` must be a metric value, delta or statistic of the rule."""
    if branch.when is None or not {"metrics", "deltas", "tie"} <= set(info.data):
        return branch  # an earlier field failed and has its own error
    known = defined_symbols(info.data["metrics"], info.data["deltas"], info.data["tie"])
    for name, col in sorted(branch.when.symbol_columns().items(), key=lambda i: i[1]):
        if name not in known:
            listed = ", ".join(sorted(known))
            raise PydanticCustomError(
                "formula",
                "{message}",
                {
                    "message": f"`{name}` is not a metric, delta or statistic of this rule"
                    f"{_suggest(name, sorted(known))} (defined: {listed})",
                    "column": col,
                    "code": "formula-unknown-symbol",
                    "subpath": "when",
                },
            )
    return branch


class DecisionRule(_Strict):
    """A pre-registered A/B decision: metrics from sidecars, deltas, a tie test, branches."""

    id: Annotated[str, StringConstraints(pattern=DECISION_ID)]
    title: Text
    description: str | None = None
    arms: Arms | None = None
    metrics: dict[SymbolName, Metric] = Field(min_length=1)
    deltas: dict[SymbolName, SymbolName] = Field(default_factory=dict)
    tie: TieTest | None = None
    branches: list[Annotated[Branch, AfterValidator(_check_branch_symbols)]] = Field(min_length=1)
    falsified_by: list[TestId] = Field(default_factory=list)

    @field_validator("deltas")
    @classmethod
    def _deltas_name_metrics(cls, deltas: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        metrics = info.data.get("metrics")
        if metrics is None:
            return deltas
        taken = set(defined_symbols(metrics, {}, None)) | set(STATISTICS)
        for name, metric_name in deltas.items():
            if metric_name not in metrics:
                raise PydanticCustomError(
                    "decision_ref",
                    "delta `{name}` names unknown metric `{metric}` (metrics: {known})",
                    {
                        "name": name,
                        "metric": metric_name,
                        "known": ", ".join(metrics),
                        "subpath": name,
                    },
                )
            if name in taken or keyword.iskeyword(name) or name in FUNCTIONS:
                raise PydanticCustomError(
                    "decision_ref",
                    "delta name `{name}` is reserved (a keyword, function, statistic or "
                    "metric value): choose another",
                    {"name": name, "subpath": name},
                )
        return deltas

    @field_validator("tie")
    @classmethod
    def _tie_on_a_rate(cls, tie: TieTest | None, info: ValidationInfo) -> TieTest | None:
        metrics = info.data.get("metrics")
        if tie is None or metrics is None:
            return tie
        metric = metrics.get(tie.metric)
        if metric is None or metric.kind != "rate":
            what = "an unknown metric" if metric is None else "a value metric"
            raise PydanticCustomError(
                "decision_ref",
                "the tie test needs a rate metric; `{metric}` is {what}",
                {"metric": tie.metric, "what": what, "subpath": "metric"},
            )
        return tie

    @field_validator("branches")
    @classmethod
    def _otherwise_last(cls, branches: list[Branch]) -> list[Branch]:
        for i, branch in enumerate(branches[:-1]):
            if branch.otherwise:
                raise PydanticCustomError(
                    "branch",
                    "`otherwise` must be the last branch: the branches after it can never be taken",
                    {"subpath": i},
                )
        return branches

    def symbols(self) -> dict[str, str]:
        """Every symbol this rule's predicates may name, with what it means."""
        return defined_symbols(self.metrics, self.deltas, self.tie)


# --- reading sidecars --------------------------------------------------------------------


class DecisionError(Exception):
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
            problem = f"no key `{part}`{_suggest(part, [str(k) for k in here])}"
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


# --- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class TieResult:
    """Two-proportion z-test of A − B, everything in percentage points except z and p."""

    metric: str
    delta: float
    sigma: float  # pooled
    sigma_unpooled: float
    z: float
    p_value: float
    alpha: float
    power: float
    z_alpha: float  # z_{1 − α/2}
    z_power: float  # z_{power}
    mde: float  # (z_alpha + z_power) · sigma_unpooled

    @property
    def abs_z(self) -> float:
        """|Δ|/σ."""
        return abs(self.z)

    @property
    def significant(self) -> bool:
        """Whether |Δ|/σ reaches z_{1 − α/2} (a two-sided test at α)."""
        return self.abs_z >= self.z_alpha

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "abs_z": self.abs_z, "significant": self.significant}


def two_proportion_test(
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    metric: str = "",
) -> TieResult:
    """Pooled two-proportion z-test of rate A − rate B, and the MDE at ``alpha``/``power``.

    σ = sqrt(p(1−p)(1/n_A + 1/n_B)) with p = (s_A + s_B)/(n_A + n_B);
    MDE = (z_{1−α/2} + z_{power}) · sqrt(p_A(1−p_A)/n_A + p_B(1−p_B)/n_B). z is 0 when σ is 0
    (then both arms are all successes or all failures, so Δ is 0 too).
    """
    if trials_a <= 0 or trials_b <= 0:
        raise ValueError("a rate needs at least one trial in each arm")
    if not (0 <= successes_a <= trials_a and 0 <= successes_b <= trials_b):
        raise ValueError("successes must lie between 0 and trials")
    pa, pb = Fraction(successes_a, trials_a), Fraction(successes_b, trials_b)
    pooled = Fraction(successes_a + successes_b, trials_a + trials_b)
    var = pooled * (1 - pooled) * (Fraction(1, trials_a) + Fraction(1, trials_b))
    var_unpooled = pa * (1 - pa) / trials_a + pb * (1 - pb) / trials_b
    delta = float(100 * (pa - pb))
    sigma = 100.0 * math.sqrt(float(var))
    z = delta / sigma if sigma > 0 else 0.0
    normal = NormalDist()
    z_alpha = normal.inv_cdf(1.0 - alpha / 2.0)
    z_power = normal.inv_cdf(power)
    return TieResult(
        metric=metric,
        delta=delta,
        sigma=sigma,
        sigma_unpooled=100.0 * math.sqrt(float(var_unpooled)),
        z=z,
        p_value=math.erfc(abs(z) / math.sqrt(2.0)),
        alpha=alpha,
        power=power,
        z_alpha=z_alpha,
        z_power=z_power,
        mde=(z_alpha + z_power) * 100.0 * math.sqrt(float(var_unpooled)),
    )


# --- applying a rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """A metric in both runs: percent for rates (with their counts), the value otherwise."""

    name: str
    kind: str
    higher_is_better: bool
    a: float
    b: float
    counts_a: tuple[int, int] | None = None
    counts_b: tuple[int, int] | None = None


@dataclass(frozen=True)
class DeltaResult:
    """A − B of one metric (percentage points for rates) and which arm it favours."""

    name: str
    metric: str
    value: float
    unit: str
    favours: Literal["A", "B", "neither"]


@dataclass(frozen=True)
class BranchResult:
    """One branch: its predicate (or ``otherwise``), truth, evaluated form, and if taken."""

    index: int  # 1-based
    when: str | None
    verdict: str
    holds: bool
    evaluated: str
    taken: bool


@dataclass(frozen=True)
class DecisionResult:
    """Everything a decision read, computed and evaluated, and the verdict it reached."""

    rule: str
    title: str
    arms: tuple[str, str]
    run_a: str
    run_b: str
    readings: tuple[Reading, ...]
    metrics: tuple[MetricResult, ...]
    deltas: tuple[DeltaResult, ...]
    tie: TieResult | None
    symbols: dict[str, float]
    branches: tuple[BranchResult, ...]
    verdict: str | None

    @property
    def taken(self) -> BranchResult | None:
        return next((b for b in self.branches if b.taken), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "arms": {"a": self.arms[0], "b": self.arms[1]},
            "runs": {"a": self.run_a, "b": self.run_b},
            "readings": [r.to_dict() for r in self.readings],
            "metrics": [asdict(m) for m in self.metrics],
            "deltas": [asdict(d) for d in self.deltas],
            "deltas_are": "A − B; rates in percentage points",
            "tie": self.tie.to_dict() if self.tie else None,
            "symbols": dict(self.symbols),
            "branches": [asdict(b) for b in self.branches],
            "taken": self.taken.index if self.taken else None,
            "verdict": self.verdict,
        }


def _counts(got: Mapping[tuple[str, str, str], Reading], run: str, name: str) -> tuple[int, int]:
    """(successes, trials) of a rate metric in one run, checked to be usable counts."""
    successes, trials = got[(run, name, "successes")], got[(run, name, "trials")]
    for reading in (successes, trials):
        if reading.exact.denominator != 1 or reading.exact < 0:
            raise DecisionError(
                f"run {run}: {reading.path}: field `{reading.field}` is a count and must be a "
                f"non-negative integer (got {reading.raw})",
                run=run,
                file=reading.path,
                field=reading.field,
            )
    if trials.exact == 0:
        raise DecisionError(
            f"run {run}: {trials.path}: field `{trials.field}` is 0: a rate needs at least one "
            "trial",
            run=run,
            file=trials.path,
            field=trials.field,
        )
    if successes.exact > trials.exact:
        raise DecisionError(
            f"run {run}: {successes.path}: field `{successes.field}` = {successes.raw} exceeds "
            f"its trials (`{trials.field}` = {trials.raw})",
            run=run,
            file=successes.path,
            field=successes.field,
        )
    return int(successes.exact), int(trials.exact)


def evaluate_rule(rule: DecisionRule, run_a: Path, run_b: Path) -> DecisionResult:
    """Read ``rule``'s numbers from both runs and apply it; deltas are A − B.

    Every branch is evaluated (for the report); the first that holds gives the verdict,
    which is None only when no branch holds and the rule has no ``otherwise``.
    Raises DecisionError, naming the file and field, when a number cannot be read or used.
    """
    readings = (*read_run(rule, Path(run_a), "A"), *read_run(rule, Path(run_b), "B"))
    got = {(r.run, r.metric, r.role): r for r in readings}
    symbols: dict[str, float] = {}
    values: dict[str, tuple[Fraction, Fraction]] = {}
    counts: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    metrics: list[MetricResult] = []
    for name, metric in rule.metrics.items():
        if metric.kind == "rate":
            ca, cb = _counts(got, "A", name), _counts(got, "B", name)
            counts[name] = (ca, cb)
            va, vb = Fraction(100 * ca[0], ca[1]), Fraction(100 * cb[0], cb[1])
            metrics.append(
                MetricResult(name, "rate", metric.higher_is_better, float(va), float(vb), ca, cb)
            )
        else:
            va, vb = got[("A", name, "value")].exact, got[("B", name, "value")].exact
            metrics.append(
                MetricResult(name, "value", metric.higher_is_better, float(va), float(vb))
            )
        values[name] = (va, vb)
        symbols[f"{name}_a"], symbols[f"{name}_b"] = float(va), float(vb)
    deltas: list[DeltaResult] = []
    for name, metric_name in rule.deltas.items():
        va, vb = values[metric_name]
        metric = rule.metrics[metric_name]
        favours: Literal["A", "B", "neither"] = (
            "neither" if va == vb else "A" if (va > vb) == metric.higher_is_better else "B"
        )
        unit = "pp" if metric.kind == "rate" else ""
        deltas.append(DeltaResult(name, metric_name, float(va - vb), unit, favours))
        symbols[name] = float(va - vb)
    tie = None
    if rule.tie is not None:
        (sa, na), (sb, nb) = counts[rule.tie.metric]
        tie = two_proportion_test(
            sa, na, sb, nb, alpha=rule.tie.alpha, power=rule.tie.power, metric=rule.tie.metric
        )
        symbols.update(
            sigma=tie.sigma,
            sigma_unpooled=tie.sigma_unpooled,
            z=tie.z,
            p_value=tie.p_value,
            mde=tie.mde,
        )
    branches: list[BranchResult] = []
    verdict: str | None = None
    for index, branch in enumerate(rule.branches, 1):
        if branch.when is None:
            holds, evaluated = True, "otherwise"
        else:
            try:
                holds = branch.when.evaluate(symbols)
                evaluated = branch.when.render(symbols)
            except FormulaError as exc:
                raise DecisionError(
                    f"{rule.id} branch {index} `{branch.when.source}`: {exc.message}"
                ) from None
        taken = holds and verdict is None
        if taken:
            verdict = branch.verdict
        source = branch.when.source if branch.when is not None else None
        branches.append(BranchResult(index, source, branch.verdict, holds, evaluated, taken))
    arms = (rule.arms.a, rule.arms.b) if rule.arms else ("A", "B")
    return DecisionResult(
        rule=rule.id,
        title=rule.title,
        arms=arms,
        run_a=str(run_a),
        run_b=str(run_b),
        readings=readings,
        metrics=tuple(metrics),
        deltas=tuple(deltas),
        tie=tie,
        symbols=symbols,
        branches=tuple(branches),
        verdict=verdict,
    )
