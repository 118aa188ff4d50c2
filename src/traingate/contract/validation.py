"""Cross-file validation: ids, references, formulas' symbols, falsifiers, versions.

Loading catches what one file gets wrong in isolation; this module catches what only a
view of every contract (and of the test files they cite) can: duplicate ids, gates that
require unknown invariants, test ids that do not exist, undeclared or unused parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from traingate.contract.constants import NON_FINITE_NAMES, check_constants
from traingate.contract.findings import Finding, field_path
from traingate.contract.formula import FormulaError
from traingate.contract.kinds import KINDS as REGISTRY
from traingate.contract.loading import FORMULA_CODES, LoadedContract, LoadError, Mark, load_contract
from traingate.contract.schema import is_semver
from traingate.contract.testids import find_root, problem_with_test_id
from traingate.contract.thresholds import iter_formulas
from traingate.contract.triage import foreign_format

CONTRACT_SUFFIXES = (".yaml", ".yml")


@dataclass
class Report:
    """Everything validation found, and the numbers for the summary line."""

    loaded: list[LoadedContract] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)  # unreadable / unparsable input (exit 2)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def counts(self) -> dict[str, int]:
        contracts = [lc.contract for lc in self.loaded if lc.contract is not None]
        return {
            "contracts": len(self.loaded),
            "invariants": sum(len(c.invariants) for c in contracts),
            "gates": sum(len(c.gates) for c in contracts),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{c['contracts']} contracts · {c['invariants']} invariants · {c['gates']} gates · "
            f"{c['errors']} errors · {c['warnings']} warnings"
        )

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def discover(paths: Sequence[Path]) -> list[Path]:
    """Contract files under ``paths`` (folders are searched recursively), in stable order.

    A folder that cannot be listed, or that vanishes while it is walked (another process
    deleting under ``/tmp``), is skipped rather than failing the whole walk.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(walk_contract_files(path)))
        elif path.exists():
            files.append(path)
        else:
            raise LoadError(f"{path}: no such file or directory")
    return files


def walk_contract_files(root: Path) -> list[Path]:
    """The ``.yaml``/``.yml`` files under ``root``; unreadable or vanished entries are skipped."""
    found: list[Path] = []
    for folder, _, names in os.walk(root, onerror=lambda _: None):
        for name in names:
            candidate = Path(folder) / name
            if candidate.suffix in CONTRACT_SUFFIXES and candidate.is_file():
                found.append(candidate)
    return found


def validate_paths(paths: Sequence[Path], root: Path | None = None) -> Report:
    """Load and validate every contract under ``paths``. Raises LoadError for unreadable input."""
    files = discover(paths)
    report = Report()
    for path in files:
        try:
            loaded = load_contract(path)
        except LoadError as exc:
            if path not in paths and not path.exists():
                continue  # found by walking a folder, deleted since: not a contract any more
            report.fatal.append(str(exc))
            continue
        pointer = foreign_format(loaded.located.data if loaded.located else None, loaded.display)
        if pointer is not None:  # a pv file: say so once, before its field-by-field findings
            loaded.findings.insert(0, pointer)
        report.loaded.append(loaded)
        report.findings.extend(loaded.findings)
    if not files:
        shown = ", ".join(str(p) for p in paths)
        report.findings.append(
            Finding(
                "TG160", "error", "no contract files found: validating nothing is not a pass", shown
            )
        )
        return report
    report.findings.extend(cross_check(report.loaded, root))
    return report


def _finding(
    lc: LoadedContract,
    code: str,
    severity: str,
    message: str,
    loc: tuple,
    key: bool = False,
    shift: int = 0,
) -> Finding:
    mark = lc.mark(loc, key=key)
    return Finding(
        code, severity, message, lc.display, mark.line, mark.column + shift, field_path(loc)
    )  # type: ignore[arg-type]


def cross_check(loaded: Iterable[LoadedContract], root: Path | None = None) -> list[Finding]:
    """The checks that need the contract models (and the test files) rather than one YAML."""
    found: list[Finding] = []
    seen_contracts: dict[str, str] = {}
    seen_ids: dict[str, str] = {}
    resolved: dict[tuple[str, Path], str | None] = {}
    valid = [lc for lc in loaded if lc.contract is not None]
    all_invariants = {inv.id for lc in valid for inv in lc.contract.invariants}  # type: ignore[union-attr]
    for lc in valid:
        c = lc.contract
        assert c is not None
        base = root or find_root(lc.path.parent)

        def unique(what: str, ident: str, loc: tuple, lc: LoadedContract = lc) -> None:
            """TG140: an invariant, gate or decision id is defined once across all files."""
            if ident in seen_ids:
                message = f"{what} id {ident} is also defined in {seen_ids[ident]}"
                found.append(_finding(lc, "TG140", "error", message, loc))
            seen_ids.setdefault(ident, lc.display)

        def tests_exist(
            ids: list[str], loc: tuple, lc: LoadedContract = lc, base: Path = base
        ) -> None:
            """TG150: every cited test id resolves to a test function (parsed, not imported)."""
            for j, tid in enumerate(ids):
                if (tid, base) not in resolved:  # 1,000 files cite the same few tests
                    resolved[tid, base] = problem_with_test_id(tid, base)
                problem = resolved[tid, base]
                if problem:
                    found.append(_finding(lc, "TG150", "error", problem, (*loc, j)))

        if c.contract in seen_contracts:
            message = f"contract id {c.contract} is also defined in {seen_contracts[c.contract]}"
            found.append(_finding(lc, "TG161", "error", message, ("contract",)))
        seen_contracts.setdefault(c.contract, lc.display)
        found.extend(_check_versions(lc))
        gated = {req for gate in c.gates for req in gate.requires}
        used: set[str] = set()
        for i, inv in enumerate(c.invariants):
            unique("invariant", inv.id, ("invariants", i, "id"))
            if not inv.falsified_by:
                message = (
                    f"{inv.id} names no falsifier: "
                    "every threshold needs a test that fails when it changes"
                )
                severity = "error"
                if c.status == "draft":  # not in force yet (an import, say): a warning, for now
                    severity = "warning"
                    message += " (a draft may lack one for now; status: active may not)"
                found.append(_finding(lc, "TG151", severity, message, ("invariants", i)))
            tests_exist(inv.falsified_by, ("invariants", i, "falsified_by"))
            if inv.id not in gated:
                message = f"{inv.id} is required by no gate"
                found.append(_finding(lc, "TG152", "warning", message, ("invariants", i, "id")))
            found.extend(_check_symbols(lc, i, used))
        for name in c.parameters:
            if name not in used:
                message = f"parameter `{name}` is declared but no formula uses it"
                found.append(
                    _finding(lc, "TG133", "warning", message, ("parameters", name), key=True)
                )
        for d, rule in enumerate(c.decisions):
            unique("decision", rule.id, ("decisions", d, "id"))
            tests_exist(rule.falsified_by, ("decisions", d, "falsified_by"))
        for g, gate in enumerate(c.gates):
            unique("gate", gate.id, ("gates", g, "id"))
            for r, req in enumerate(gate.requires):
                if req not in all_invariants:
                    message = f"{gate.id} requires unknown invariant {req}"
                    found.append(
                        _finding(lc, "TG141", "error", message, ("gates", g, "requires", r))
                    )
            tests_exist(gate.evidence, ("gates", g, "evidence"))
    return found


def _check_versions(lc: LoadedContract) -> list[Finding]:
    c = lc.contract
    assert c is not None
    out = []
    if not is_semver(c.version):
        out.append(
            _finding(
                lc,
                "TG110",
                "error",
                f"version `{c.version}` is not semver (MAJOR.MINOR.PATCH)",
                ("version",),
            )
        )
    for k, entry in enumerate(c.changelog):
        if not is_semver(entry.version):
            out.append(
                _finding(
                    lc,
                    "TG110",
                    "error",
                    f"changelog version `{entry.version}` is not semver",
                    ("changelog", k, "version"),
                )
            )
    if c.changelog and c.changelog[0].version != c.version:
        out.append(
            _finding(
                lc,
                "TG111",
                "error",
                f"changelog[0].version is {c.changelog[0].version} but version is {c.version}: "
                "add a changelog entry for this version at the top",
                ("changelog", 0, "version"),
            )
        )
    return out


def _check_symbols(lc: LoadedContract, index: int, used: set[str]) -> list[Finding]:
    """Every formula symbol must be a declared parameter (or a metric the kind observes), and
    every constant part a finite number (thresholds are checked as they load; a kind's own
    formula fields, such as an expression's predicate, are checked here)."""
    c = lc.contract
    assert c is not None
    inv = c.invariants[index]
    metric_names = REGISTRY[inv.check].metric_symbols(inv.params)
    out = []
    for sub, formula in iter_formulas(inv.params):
        loc = ("invariants", index, "params", *sub)
        mark: Mark = lc.mark(loc)
        shift = mark.column + (1 if mark.quoted else 0)
        try:
            check_constants(formula.tree)
        except FormulaError as exc:
            code = FORMULA_CODES.get(exc.code, "TG136")
            at = (mark.line, shift + exc.column)
            out.append(Finding(code, "error", exc.message, lc.display, *at, field_path(loc)))
        for name, col in sorted(formula.symbol_columns().items()):
            if name in metric_names or name.lower() in NON_FINITE_NAMES:  # inf: TG135 above
                continue
            if name in c.parameters:
                used.add(name)
                continue
            declared = ", ".join(sorted(c.parameters)) or "none"
            out.append(
                Finding(
                    "TG131",
                    "error",
                    f"formula `{formula.source}` names `{name}`, which is not a declared parameter "
                    f"(declared: {declared})",
                    lc.display,
                    mark.line,
                    shift + col,
                    field_path(loc),
                )
            )
    return out
