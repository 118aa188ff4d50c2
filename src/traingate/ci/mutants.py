"""Mutation testing of falsifiers: ``contracts verify --mutants``.

A falsifier that passes whatever the threshold is locks nothing. For each contract this
makes small mutants, of the contract (formula constants nudged, operators and comparisons
swapped, plain numeric params nudged) and of the decision code its invariants run
(comparisons swapped in the check module's functions), and requires at least one of the
contract's falsifiers to fail on each. A mutant that survives is a finding.

Every mutant runs in its own copy of the project's ``contracts/`` and ``falsifiers/``
(``TRAINGATE_SHIPPED_ROOT`` points the falsifiers at the copy); a code mutant is installed by
:mod:`traingate.ci.mutant_plugin` before the falsifiers import it.
"""

from __future__ import annotations

import ast
import copy
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

import traingate
from traingate.checks import REGISTRY
from traingate.contract.findings import field_path
from traingate.contract.formula import Bin, Call, Compare, Neg, Node, Num, unparse
from traingate.contract.loading import LoadedContract, load_contract
from traingate.contract.schema import Contract
from traingate.contract.testids import find_root
from traingate.contract.thresholds import iter_formulas

MutantKind = Literal["formula", "param", "decision", "code"]
Outcome = Literal["pending", "killed", "survived", "error"]

BINOP_SWAPS = {"+": "-", "-": "+", "*": "/", "/": "*"}
COMPARE_SWAPS = {
    "<": ("<=", ">"),
    "<=": ("<", ">="),
    ">": (">=", "<"),
    ">=": (">", "<="),
    "==": ("!=",),
    "!=": ("==",),
}
AST_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
TIMEOUT_S = 300


@dataclass
class Mutant:
    """One small change and whether the contract's falsifiers noticed it."""

    id: str
    contract: str
    kind: MutantKind
    location: str
    description: str
    outcome: Outcome = "pending"
    detail: str = ""
    # how to apply it: a contract file's new text, or a module's new source
    contract_file: Path | None = field(default=None, repr=False)
    contract_text: str | None = field(default=None, repr=False)
    module: str | None = field(default=None, repr=False)
    module_source: str | None = field(default=None, repr=False)
    # the falsifiers most likely to kill it, run first
    targeted: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "contract": self.contract,
            "kind": self.kind,
            "location": self.location,
            "description": self.description,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass
class MutationReport:
    """Every mutant with its outcome, each contract's unmutated run, and the wall time."""

    mutants: list[Mutant] = field(default_factory=list)
    contracts: list[str] = field(default_factory=list)
    baseline_failures: dict[str, str] = field(default_factory=dict)
    invalid_skipped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def score(self, contract: str) -> tuple[int, int]:
        """(killed, total) for one contract."""
        mine = [m for m in self.mutants if m.contract == contract]
        return sum(m.outcome == "killed" for m in mine), len(mine)

    @property
    def ok(self) -> bool:
        """No survivor, no error, and every contract's falsifiers pass unmutated."""
        return not self.baseline_failures and all(m.outcome == "killed" for m in self.mutants)

    def to_dict(self) -> dict[str, Any]:
        scores = {}
        for c in self.contracts:
            killed, total = self.score(c)
            scores[c] = {
                "killed": killed,
                "total": total,
                "score": killed / total if total else None,
                "baseline_failure": self.baseline_failures.get(c),
                "invalid_skipped": self.invalid_skipped.get(c, 0),
            }
        return {
            "ok": self.ok,
            "wall_s": round(self.wall_s, 2),
            "contracts": scores,
            "mutants": [m.to_dict() for m in self.mutants],
        }


def render_text(report: MutationReport) -> str:
    """Per-contract scores, then each survivor (and error) with its location."""
    lines = []
    for c in report.contracts:
        if c in report.baseline_failures:
            lines.append(f"{c}: falsifiers fail unmutated; mutants not run")
            lines.append(f"  {report.baseline_failures[c]}")
            continue
        killed, total = report.score(c)
        pct = f"{100 * killed / total:.0f} %" if total else "no mutants"
        lines.append(f"{c}: {killed}/{total} mutants killed ({pct})")
        for m in report.mutants:
            if m.contract == c and m.outcome != "killed":
                lines.append(f"  {m.outcome}: {m.id} [{m.kind}] {m.location}: {m.description}")
                if m.detail:
                    lines.append(f"    {m.detail}")
    survived = sum(m.outcome == "survived" for m in report.mutants)
    lines.append(f"{len(report.mutants)} mutants, {survived} survived, {report.wall_s:.1f} s")
    return "\n".join(lines)


# -- formula mutants -----------------------------------------------------------------------


def nudge_float(value: float) -> list[float]:
    """×1.1 and ×0.9; zero becomes 0.1."""
    return [0.1] if value == 0 else [value * 1.1, value * 0.9]


def formula_mutants(node: Node) -> Iterator[tuple[Node, str]]:
    """Every single-point mutant of a formula tree, with a description of the change."""
    if isinstance(node, Num):
        for new in nudge_float(node.value):
            yield Num(new), f"constant {unparse(node)} → {unparse(Num(new))}"
    elif isinstance(node, Neg):
        for new, what in formula_mutants(node.operand):
            yield Neg(new), what
    elif isinstance(node, Bin):
        if node.op in BINOP_SWAPS:
            yield (
                Bin(BINOP_SWAPS[node.op], node.left, node.right),
                f"operator {node.op} → {BINOP_SWAPS[node.op]}",
            )
        for new, what in formula_mutants(node.left):
            yield Bin(node.op, new, node.right), what
        for new, what in formula_mutants(node.right):
            yield Bin(node.op, node.left, new), what
    elif isinstance(node, Call):
        for i, arg in enumerate(node.args):
            for new, what in formula_mutants(arg):
                args = (*node.args[:i], new, *node.args[i + 1 :])
                yield Call(node.name, args, node.column), what
    elif isinstance(node, Compare):
        for op in COMPARE_SWAPS.get(node.op, ()):
            yield Compare(op, node.left, node.right), f"comparison {node.op} → {op}"
        for new, what in formula_mutants(node.left):
            yield Compare(node.op, new, node.right), what
        for new, what in formula_mutants(node.right):
            yield Compare(node.op, node.left, new), what


def _raw_get(data: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        found = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        )
        if not found:
            return _MISSING
        data = data[part]
    return data


def _raw_set(data: Any, loc: tuple[str | int, ...], value: Any) -> Any:
    """A deep copy of ``data`` with the value at ``loc`` replaced."""
    out = copy.deepcopy(data)
    target = out
    for part in loc[:-1]:
        target = target[part]
    target[loc[-1]] = value
    return out


_MISSING = object()


def _param_edits(
    params: BaseModel, raw: dict[str, Any]
) -> Iterator[tuple[tuple[str | int, ...], Any, str, MutantKind]]:
    """(path inside params, new raw value, description, kind) for each params mutant."""
    for path, formula in iter_formulas(params):
        original = _raw_get(raw, path)
        if original is _MISSING:  # a default, not written in the contract
            continue
        for tree, what in formula_mutants(formula.tree):
            if isinstance(original, str):
                new: Any = unparse(tree)
            elif isinstance(tree, Num):
                new = tree.value
            else:
                continue
            shown = f"{field_path(path)}: {formula.source!r} → {unparse(tree)!r} ({what})"
            yield path, new, shown, "formula"
    for name in type(params).model_fields:
        value = getattr(params, name)
        if name not in raw or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, int):
            nudges: list[Any] = [value + 1, value - 1] if value >= 1 else [1]
        else:
            nudges = nudge_float(value)
        for new in nudges:
            yield (name,), new, f"{name}: {value} → {new:g}", "param"


def _decision_edits(
    contract: Contract,
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(raw path, new ``when`` text, description) for each decision-rule branch mutant."""
    for r, rule in enumerate(contract.decisions):
        for b, branch in enumerate(rule.branches):
            predicate = getattr(branch, "when", None)
            if predicate is None:
                continue
            text = predicate.source
            for atom in predicate.atoms():
                source = atom.formula.source
                start = text.find(source, atom.offset)
                if start < 0:
                    continue
                for tree, what in formula_mutants(atom.formula.tree):
                    new = text[:start] + unparse(tree) + text[start + len(source) :]
                    loc = ("decisions", r, "branches", b, "when")
                    yield loc, new, f"{rule.id} when {text!r}: {new!r} ({what})"


def contract_mutants(loaded: LoadedContract, root: Path) -> tuple[list[Mutant], int]:
    """Contract-text mutants of one loaded contract, and how many were invalid (dropped)."""
    contract = loaded.contract
    assert contract is not None and loaded.located is not None
    data = loaded.located.data
    rel = loaded.path.resolve().relative_to(root.resolve())
    edits: list[tuple[tuple[str | int, ...], Any, str, MutantKind, tuple[str, ...]]] = []
    for i, inv in enumerate(contract.invariants):
        raw_params = _raw_get(data, ("invariants", i, "params"))
        if not isinstance(inv.params, BaseModel) or not isinstance(raw_params, dict):
            continue
        for path, new, what, kind in _param_edits(inv.params, raw_params):
            loc = ("invariants", i, "params", *path)
            edits.append((loc, new, f"{inv.id} {what}", kind, tuple(inv.falsified_by)))
    for loc, new, what in _decision_edits(contract):
        rule = contract.decisions[int(loc[1])]
        edits.append((loc, new, what, "decision", tuple(rule.falsified_by)))
    mutants: list[Mutant] = []
    invalid = 0
    with tempfile.TemporaryDirectory() as tmp:
        for loc, new, what, kind, targeted in edits:
            text = yaml.safe_dump(_raw_set(data, loc, new), sort_keys=False, allow_unicode=True)
            probe = Path(tmp) / loaded.path.name
            probe.write_text(text, encoding="utf-8")
            check = load_contract(probe)
            if check.contract is None or any(f.severity == "error" for f in check.findings):
                invalid += 1
                continue
            line = loaded.mark(loc).line
            mutants.append(
                Mutant(
                    id=f"{contract.contract}#{len(mutants) + 1}",
                    contract=contract.contract,
                    kind=kind,
                    location=f"{rel}:{line} {field_path(loc)}",
                    description=what,
                    contract_file=rel,
                    contract_text=text,
                    targeted=targeted,
                )
            )
    return mutants, invalid


# -- code mutants --------------------------------------------------------------------------


def module_mutants(source: str) -> Iterator[tuple[str, int, str, str]]:
    """(mutated source, line, function name, description) for every swappable comparison in
    the module's top-level functions (the pure decision functions and their helpers)."""
    tree = ast.parse(source)
    sites: list[tuple[str, int, int]] = []  # function, compare ordinal, op index
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    for func in tree.body:
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Compare):
                for j, op in enumerate(node.ops):
                    if type(op) in AST_COMPARE_SWAPS:
                        sites.append((func.name, compares.index(node), j))
    for func_name, ordinal, j in sites:
        mutated = ast.parse(source)
        node = [n for n in ast.walk(mutated) if isinstance(n, ast.Compare)][ordinal]
        before = ast.unparse(node)
        node.ops[j] = AST_COMPARE_SWAPS[type(node.ops[j])]()
        yield ast.unparse(mutated), node.lineno, func_name, f"{before}  →  {ast.unparse(node)}"


def code_mutants(contract: Contract, root: Path) -> list[Mutant]:
    """Comparison mutants of every check module the contract's invariants use."""
    mutants: list[Mutant] = []
    kinds = list(dict.fromkeys(inv.check for inv in contract.invariants))
    for kind in kinds:
        cls = REGISTRY.get(kind)
        if cls is None:
            continue
        module = sys.modules[cls.__module__]
        file = Path(inspect.getsourcefile(module) or "")
        shown = _display(file, root)
        targeted = tuple(
            t for inv in contract.invariants if inv.check == kind for t in inv.falsified_by
        )
        for source, line, func, what in module_mutants(file.read_text(encoding="utf-8")):
            mutants.append(
                Mutant(
                    id=f"{contract.contract}#{len(mutants) + 1}",
                    contract=contract.contract,
                    kind="code",
                    location=f"{shown}:{line}",
                    description=f"{func}: {what}",
                    module=module.__name__,
                    module_source=source,
                    targeted=tuple(dict.fromkeys(targeted)),
                )
            )
    return mutants


def _display(file: Path, root: Path) -> str:
    for base in (root, Path(traingate.__file__).resolve().parents[1]):
        try:
            return str(file.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(file)


# -- running -------------------------------------------------------------------------------


def contract_tests(contract: Contract) -> list[str]:
    """Every falsifier and evidence test the contract cites, in order, once."""
    ids: list[str] = []
    for inv in contract.invariants:
        ids.extend(inv.falsified_by)
    for gate in contract.gates:
        ids.extend(gate.evidence)
    for rule in contract.decisions:
        ids.extend(rule.falsified_by)
    return list(dict.fromkeys(ids))


def _copy_project(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in ("contracts", "falsifiers"):
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name, ignore=ignore)
    if (root / "conftest.py").is_file():
        shutil.copy2(root / "conftest.py", dest / "conftest.py")


def _pytest(work: Path, ids: list[str], env: dict[str, str], stop_first: bool) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["-p", "traingate.ci.mutant_plugin", "--rootdir", str(work), "-o", "addopts="]
    cmd += ["-x"] if stop_first else []
    try:
        proc = subprocess.run(
            [*cmd, *ids],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _env(work: Path, extra: dict[str, str]) -> dict[str, str]:
    src = str(Path(traingate.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "TRAINGATE_SHIPPED_ROOT": str(work),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def _last_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_mutant(mutant: Mutant, root: Path, tests: list[str]) -> Mutant:
    """Apply ``mutant`` in a fresh copy of ``root`` and run the falsifiers (targeted first)."""
    with tempfile.TemporaryDirectory(prefix="traingate-mutant-") as tmp:
        work = Path(tmp)
        _copy_project(root, work)
        extra: dict[str, str] = {}
        if mutant.contract_file is not None and mutant.contract_text is not None:
            (work / mutant.contract_file).write_text(mutant.contract_text, encoding="utf-8")
        if mutant.module is not None and mutant.module_source is not None:
            source = work / "_mutant_module.py"
            source.write_text(mutant.module_source, encoding="utf-8")
            extra = {
                "TRAINGATE_MUTANT_MODULE": mutant.module,
                "TRAINGATE_MUTANT_SOURCE": str(source),
            }
        env = _env(work, extra)
        first = [t for t in mutant.targeted if t in tests]
        rest = [t for t in tests if t not in first]
        for stage in (first, rest):
            if not stage:
                continue
            code, output = _pytest(work, stage, env, stop_first=True)
            if code in (1, 2):  # a falsifier failed (2: it failed to even collect)
                mutant.outcome = "killed"
                mutant.detail = _last_line(output)
                return mutant
            if code != 0:
                mutant.outcome = "error"
                mutant.detail = f"pytest exit {code}: {_last_line(output)}"
                return mutant
        mutant.outcome = "survived"
        mutant.detail = f"{len(tests)} falsifiers all passed"
        return mutant


def _baseline(root: Path, tests: list[str]) -> str | None:
    """None when the falsifiers pass on an unmutated copy, else why not."""
    if not tests:
        return "the contract cites no falsifiers"
    with tempfile.TemporaryDirectory(prefix="traingate-baseline-") as tmp:
        work = Path(tmp)
        _copy_project(root, work)
        code, output = _pytest(work, tests, _env(work, {}), stop_first=False)
    return None if code == 0 else f"pytest exit {code}: {_last_line(output)}"


def run_mutation(
    loaded: list[LoadedContract], root: Path | None = None, workers: int = 2
) -> MutationReport:
    """Generate every contract's mutants and run its falsifiers on each, ``workers`` at once."""
    start = time.monotonic()
    report = MutationReport()
    plans: list[tuple[Contract, Path, list[str]]] = []
    for lc in loaded:
        if lc.contract is None:
            continue
        base = (root or find_root(lc.path.parent)).resolve()
        contract = lc.contract
        report.contracts.append(contract.contract)
        mutants, invalid = contract_mutants(lc, base)
        mutants += code_mutants(contract, base)
        for n, m in enumerate(mutants, 1):
            m.id = f"{contract.contract}#{n}"
        report.mutants.extend(mutants)
        if invalid:
            report.invalid_skipped[contract.contract] = invalid
        plans.append((contract, base, contract_tests(contract)))
    tests_of = {c.contract: (base, tests) for c, base, tests in plans}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        baselines = {c.contract: pool.submit(_baseline, base, tests) for c, base, tests in plans}
        for name, future in baselines.items():
            failure = future.result()
            if failure is not None:
                report.baseline_failures[name] = failure
        runnable = [m for m in report.mutants if m.contract not in report.baseline_failures]
        report.mutants = runnable
        list(pool.map(lambda m: run_mutant(m, *tests_of[m.contract]), runnable))
    report.wall_s = time.monotonic() - start
    return report
