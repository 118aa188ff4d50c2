"""Load contract YAML into models, keeping file:line:column for every value.

PyYAML keeps the last of duplicate keys silently; here a duplicate is a finding. Every
pydantic error is mapped back to the YAML node it came from, with a stable code, and
near-miss keys get a suggestion (``gate:`` → did you mean ``gates``?).
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from traingate.contract.findings import Finding, field_path, suggest
from traingate.contract.kinds import KINDS
from traingate.contract.schema import Contract
from traingate.errors import TraingateError

Loc = tuple[str | int, ...]
MAX_BYTES = 2_000_000
MAX_NODES = 100_000  # after alias expansion (a 500-byte alias bomb expands to 10**9)


class LoadError(TraingateError):
    """Input that cannot be read or parsed at all: a one-line message, CLI exit 2."""


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based
    quoted: bool = False


@dataclass
class Located:
    """Plain data from a YAML document plus where each value and key sits."""

    data: Any
    values: dict[Loc, Mark] = field(default_factory=dict)
    keys: dict[Loc, Mark] = field(default_factory=dict)
    duplicates: list[tuple[Loc, Mark]] = field(default_factory=list)

    def mark(self, loc: Loc, *, key: bool = False) -> Mark:
        """The mark of ``loc`` (its key if ``key``), else of its nearest located ancestor."""
        table = self.keys if key else self.values
        for cut in range(len(loc), -1, -1):
            probe = loc[:cut]
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
        return Mark(1, 1)


@dataclass
class LoadedContract:
    """A contract file after loading: the model (if it validated) and its findings."""

    path: Path
    display: str
    contract: Contract | None
    located: Located | None
    findings: list[Finding]

    def mark(self, loc: Loc, *, key: bool = False) -> Mark:
        return self.located.mark(loc, key=key) if self.located else Mark(0, 0)


_MARKS: dict[tuple[int, int, bool], Mark] = {}  # marks are immutable: share equal ones


def _mark(node: yaml.Node) -> Mark:
    start = node.start_mark
    key = (start.line, start.column, getattr(node, "style", None) in ("'", '"'))
    mark = _MARKS.get(key)
    if mark is None:
        if len(_MARKS) >= 200_000:
            _MARKS.clear()
        mark = _MARKS[key] = Mark(key[0] + 1, key[1] + 1, key[2])
    return mark


# libyaml's parser (PyYAML's C extension) scans ~10x faster than the pure-Python one and
# gives the same nodes and marks (line, column in characters). Its composer recurses in C
# with no depth check (~100,000 nested `[` crash the process), so text that might nest
# deeply takes the pure-Python path, as does any text the C path fails on: errors and their
# messages are the pure-Python loader's, whichever path parsed first. libyaml also accepts
# tabs where PyYAML's scanner refuses them (``a: [1,\t2]``), so text with a tab takes the
# pure-Python path too.
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}


class _CachingResolve:
    """A scalar's implicit tag depends only on its text and style (SafeLoader has no path
    resolvers): remember it, since a contract's keys and values repeat across files."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not yaml.ScalarNode or self.yaml_path_resolvers:  # type: ignore[attr-defined]
            return super().resolve(kind, value, implicit)  # type: ignore[misc]
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            if len(_RESOLVED) >= 100_000:
                _RESOLVED.clear()
            tag = _RESOLVED[key] = super().resolve(kind, value, implicit)  # type: ignore[misc]
        return tag


CLoader: type[yaml.SafeLoader] | None = (
    type("CLoader", (_CachingResolve, yaml.CSafeLoader), {})
    if hasattr(yaml, "CSafeLoader")
    else None
)
C_MAX_NESTING = 2_000  # far above what _build accepts (100), far below what crashes libyaml


def _nesting_bound(text: str) -> int:
    """An upper bound on the text's nesting depth: every flow level opens a bracket, every
    block level sits at least one column right of its parent (or after ``- ``/``? ``)."""
    longest = max((len(line) for line in text.splitlines()), default=0)
    return text.count("[") + text.count("{") + 2 * (longest + 1)


def compose_located(text: str) -> Located:
    """Parse YAML text into plain data with locations; raises LoadError on syntax errors."""
    if CLoader is not None and "\t" not in text and _nesting_bound(text) <= C_MAX_NESTING:
        try:
            return _compose(CLoader, text)
        except (LoadError, yaml.YAMLError, RecursionError, ValueError, TypeError):
            pass  # the pure-Python loader says what is wrong, in its own words
    return _compose(yaml.SafeLoader, text)


def _compose(loader_class: type[yaml.SafeLoader], text: str) -> Located:
    try:
        loader = loader_class(text)  # the pure-Python one already rejects non-printables
    except yaml.YAMLError as exc:
        raise LoadError(f"YAML error: {str(exc).splitlines()[0]}") from None
    try:
        node = loader.get_single_node()
        located = Located(None)
        located.data = _build(loader, node, (), located, 0) if node is not None else None
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"{where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"YAML error: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise LoadError("YAML is nested too deeply") from None
    finally:
        loader.dispose()


_STR = "tag:yaml.org,2002:str"  # a str scalar constructs to its text, nothing more


def _build(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, out: Located, depth: int) -> Any:
    if depth > 100:
        raise LoadError("YAML is nested too deeply")
    values = out.values
    if len(values) >= MAX_NODES:
        m = _mark(node)
        raise LoadError(f"{m.line}:{m.column}: YAML expands to more than {MAX_NODES} values")
    values[loc] = _mark(node)
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR:
            return node.value
        try:
            return loader.construct_object(node, deep=True)
        except (ValueError, OverflowError):
            # `2026-02-30` matches YAML's timestamp pattern but is no date; a 5000-digit int
            # exceeds Python's int-parsing limit: keep the text, and the schema reports it
            return node.value
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                m = _mark(key_node)
                raise LoadError(f"{m.line}:{m.column}: mapping keys must be plain scalars")
            key = key_node.value if key_node.tag == _STR else loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            where = (*loc, key)
            if key in result:
                out.duplicates.append((where, _mark(key_node)))
                continue
            out.keys[where] = _mark(key_node)
            result[key] = _build(loader, value_node, where, out, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*loc, i), out, depth + 1) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)  # pragma: no cover  (no other node kind)


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model that owns ``loc`` (for did-you-mean suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _unwrap(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Find the model type inside ``list[M]``, ``dict[str, M]``, ``M | None`` annotations."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return _unwrap(typing.get_args(annotation)[0])
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


# FormulaError.code → finding code (validation reuses it for checks made after loading)
FORMULA_CODES = {
    "formula-syntax": "TG130",
    "formula-unknown-function": "TG132",
    "formula-unknown-symbol": "TG131",
    "formula-not-finite": "TG135",
    "formula-constant": "TG136",
}
_SELF_EXPLAINED = {"TG135", "TG136"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _quoted_date_hint(kind: str, given: object, loc: Loc) -> str:
    """`` — … write the date unquoted: date: 2026-04-22`` when a date field got the text of a
    real date: YAML reads a quoted date as a string, and strict models refuse to coerce it."""
    if not kind.startswith("date") or not isinstance(given, str) or not _ISO_DATE.match(given):
        return ""
    try:
        dt.date.fromisoformat(given)
    except ValueError:
        return ""
    return f" — YAML reads a quoted date as text: write the date unquoted: {loc[-1]}: {given}"


_CHECK_CODES = {"check_kind": "TG120", "check_point": "TG122"}


def _owner(loc: Loc, data: Any) -> tuple[type[BaseModel], Loc, str]:
    """The model that validated ``loc``, where its fields start, and its default code.

    An invariant's ``params`` are validated by its kind's own model (TG121); everything
    else by the contract schema (TG100).
    """
    if len(loc) >= 3 and loc[0] == "invariants" and loc[2] == "params":
        raw = data["invariants"][loc[1]]
        kind = KINDS.get(raw.get("check")) if isinstance(raw, dict) else None
        if kind is not None:
            return kind.params_model, loc[:3], "TG121"
    return Contract, (), "TG100"


def _map_errors(exc: ValidationError, loaded: LoadedContract) -> list[Finding]:
    """One finding per pydantic error, with its code, its message and its YAML location."""
    data = loaded.located.data if loaded.located else None
    findings = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        model, prefix, default_code = _owner(loc, data)
        ctx = err.get("ctx") or {}
        if "subpath" in ctx:
            loc = (*loc, ctx["subpath"])
        kind = err["type"]
        message = err["msg"]
        code = default_code
        if kind == "extra_forbidden":
            key = loc[-1]
            allowed = _fields_at(model, loc[len(prefix) : -1])
            code = "TG101" if default_code == "TG100" else default_code
            message = f"unknown key `{key}`{suggest(str(key), allowed)}"
            mark = loaded.mark(loc, key=True)
        elif kind == "missing":
            code = "TG102" if default_code == "TG100" else default_code
            message = f"required field `{loc[-1]}` is missing"
            if len(loc) == 3 and loc[0] == "invariants" and loc[2] == "check":
                message += f" (known kinds: {', '.join(sorted(KINDS))})"
            mark = loaded.mark(loc[:-1])
        elif kind == "formula":
            code = FORMULA_CODES.get(str(ctx.get("code")), "TG130")
            message = str(ctx.get("message", message))
            if code not in _SELF_EXPLAINED:  # these say what the value is, not only "formula"
                message = f"formula: {message}"
            base = loaded.mark(loc)
            shift = int(ctx.get("column", 0)) + (1 if base.quoted else 0)
            mark = Mark(base.line, base.column + shift)
        elif kind in ("regime_missing", "regime_key"):
            code = "TG134"
            mark = loaded.mark(loc, key=kind == "regime_key")
        elif kind in _CHECK_CODES:
            code = _CHECK_CODES[kind]
            mark = loaded.mark(loc)
        else:
            mark = loaded.mark(loc)
            given = err.get("input")
            if not isinstance(given, dict | list):
                message = f"{message} (got {given!r}){_quoted_date_hint(kind, given, loc)}"
        findings.append(
            Finding(code, "error", message, loaded.display, mark.line, mark.column, field_path(loc))
        )
    return findings


def read_text(path: Path) -> str:
    """Read a contract file, turning every OS/encoding problem into a LoadError."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise LoadError(f"{path}: file is larger than {MAX_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read ({exc.strerror})") from None


def read_located(path: Path, shown: str) -> Located:
    """Read and parse one YAML file; a LoadError names it as ``shown``."""
    text = read_text(path)
    try:
        return compose_located(text)
    except LoadError as exc:
        raise LoadError(f"{shown}:{exc}") from None


def load_contract(path: Path | str, display: str | None = None) -> LoadedContract:
    """Load one contract file. Raises LoadError only for unreadable/unparsable input;
    everything else (schema, params, formulas) comes back as findings."""
    path = Path(path)
    shown = display or str(path)
    located = read_located(path, shown)
    loaded = LoadedContract(path, shown, None, located, [])
    for loc, mark in located.duplicates:
        loaded.findings.append(
            Finding(
                "TG103",
                "error",
                f"duplicate key `{loc[-1]}` (YAML would keep only the last)",
                shown,
                mark.line,
                mark.column,
                field_path(loc),
            )
        )
    data = located.data
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        loaded.findings.append(
            Finding(
                "TG100",
                "error",
                f"a contract file must be a mapping, this one is {what}",
                shown,
                1,
                1,
            )
        )
        return loaded
    try:
        loaded.contract = Contract.model_validate(data)
    except ValidationError as exc:
        loaded.findings.extend(_map_errors(exc, loaded))
    return loaded
