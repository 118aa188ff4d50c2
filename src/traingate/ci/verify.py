"""Derive discharge status by running the evidence: never read it from the YAML.

Every ``falsified_by`` and ``evidence`` test id is run once with pytest (one process);
an invariant is ``discharged`` when all its falsifiers pass, ``failed`` when any fails,
``missing`` when it names none or one does not exist or did not run. A gate is discharged
when every required invariant is and all its evidence passes; a gate's
``external_evidence`` (tests in another language, benchmarks) is never run and reported as
``external``, so a gate citing any is at best ``missing``, never discharged. A test file
pytest cannot collect (or a pytest run that stops before running anything) is recorded in
``collection_errors`` with pytest's own error text, and the verification fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from traingate.contract.loading import LoadedContract
from traingate.contract.schema import Contract
from traingate.contract.testids import find_root, problem_with_test_id, split_test_id

Status = Literal["discharged", "failed", "missing"]
TestOutcome = Literal["passed", "failed", "skipped", "missing"]


@dataclass
class Verification:
    """Per-test outcomes and the statuses derived from them."""

    tests: dict[str, TestOutcome] = field(default_factory=dict)
    invariants: dict[str, Status] = field(default_factory=dict)
    gates: dict[str, Status] = field(default_factory=dict)
    decisions: dict[str, Status] = field(default_factory=dict)
    ship_blocking: dict[str, bool] = field(default_factory=dict)
    contracts: dict[str, str] = field(default_factory=dict)  # gate/invariant id → contract ref
    pytest_exit: int = 0
    collection_errors: dict[str, str] = field(default_factory=dict)  # node id → pytest's text
    external: dict[str, list[str]] = field(default_factory=dict)  # gate id → refs never run

    @property
    def ok(self) -> bool:
        """Everything collected, some gate is ship-blocking, every one is discharged, and so
        is every decision rule."""
        blocking = [g for g, b in self.ship_blocking.items() if b]
        rules_ok = all(s == "discharged" for s in self.decisions.values())
        gates_ok = all(self.gates[g] == "discharged" for g in blocking)
        return not self.collection_errors and bool(blocking) and rules_ok and gates_ok

    def to_dict(self) -> dict[str, object]:
        """The ``--format json`` payload."""
        return {
            "ok": self.ok,
            "collection_errors": self.collection_errors,
            "tests": self.tests,
            "invariants": {
                k: {"status": v, "contract": self.contracts[k]} for k, v in self.invariants.items()
            },
            "decisions": {
                k: {"status": v, "contract": self.contracts[k]} for k, v in self.decisions.items()
            },
            "gates": {
                k: {
                    "status": v,
                    "ship_blocking": self.ship_blocking[k],
                    "contract": self.contracts[k],
                    # only a gate citing external evidence has the key (never run: listed)
                    **({"external": self.external[k]} if k in self.external else {}),
                }
                for k, v in self.gates.items()
            },
        }


def combine(outcomes: list[TestOutcome]) -> Status:
    """Status of a list of test outcomes: any failure fails; anything not run is missing."""
    if any(o == "failed" for o in outcomes):
        return "failed"
    if not outcomes or any(o != "passed" for o in outcomes):
        return "missing"
    return "discharged"


def cited_tests(contract: Contract) -> list[str]:
    """Every falsifier and evidence test the contract cites, in order, once."""
    ids: list[str] = []
    for inv in contract.invariants:
        ids.extend(inv.falsified_by)
    for gate in contract.gates:
        ids.extend(gate.evidence)
    for rule in contract.decisions:
        ids.extend(rule.falsified_by)
    return list(dict.fromkeys(ids))


# pytest's exit codes for "stopped before running the tests": interrupted (a collection
# error), internal error, usage error (a conftest that fails to import, a node not found).
STOPPED_EARLY = (2, 3, 4)


def run_tests(
    test_ids: list[str],
    root: Path,
    extra_args: list[str] | None = None,
    collection_errors: dict[str, str] | None = None,
) -> tuple[dict[str, TestOutcome], int]:
    """Run ``test_ids`` under ``root`` with pytest and return each id's outcome.

    Files pytest fails to collect go into ``collection_errors`` (node id → pytest's error
    text); so does pytest's own output when it stops before running or recording anything.
    """
    outcomes: dict[str, TestOutcome] = {}
    runnable = []
    for tid in test_ids:
        if problem_with_test_id(tid, root):
            outcomes[tid] = "missing"
        else:
            runnable.append(tid)
    if not runnable:
        return outcomes, 0
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "outcomes.json"
        env = {**os.environ, "TRAINGATE_OUTCOMES": str(report)}
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "traingate.ci.pytest_outcomes",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(root),
            *(extra_args or []),
            *sorted(set(runnable)),
        ]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        written = json.loads(report.read_text()) if report.exists() else {}
    recorded: dict[str, str] = written.get("outcomes", {})
    errors: dict[str, str] = written.get("collection_errors", {})
    if not errors and not recorded and proc.returncode in STOPPED_EARLY:
        errors = {f"pytest (exit {proc.returncode})": (proc.stdout + proc.stderr).strip()[-4000:]}
    if collection_errors is not None:
        collection_errors.update(errors)
    for tid in runnable:
        file, names = split_test_id(tid)
        base = "::".join((file, *names))
        hits = [
            o for node, o in recorded.items() if node in (tid, base) or node.startswith(base + "[")
        ]
        outcomes[tid] = (
            "failed"
            if "failed" in hits
            else "passed"
            if hits and all(h == "passed" for h in hits)
            else ("skipped" if hits else "missing")
        )
    return outcomes, proc.returncode


def verify(
    loaded: list[LoadedContract], root: Path | None = None, extra_args: list[str] | None = None
) -> Verification:
    """Run every cited test once and derive invariant and gate statuses."""
    result = Verification()
    contracts = [lc for lc in loaded if lc.contract is not None]
    by_root: dict[Path, set[str]] = {}
    for lc in contracts:
        base = root or find_root(lc.path.parent)
        assert lc.contract is not None
        by_root.setdefault(base, set()).update(cited_tests(lc.contract))
    for base, ids in by_root.items():
        outcomes, code = run_tests(sorted(ids), base, extra_args, result.collection_errors)
        result.tests.update(outcomes)
        result.pytest_exit = max(result.pytest_exit, code)
    for lc in contracts:
        c = lc.contract
        assert c is not None
        for inv in c.invariants:
            result.invariants[inv.id] = combine([result.tests[t] for t in inv.falsified_by])
            result.contracts[inv.id] = c.ref
        for rule in c.decisions:
            result.decisions[rule.id] = combine([result.tests[t] for t in rule.falsified_by])
            result.contracts[rule.id] = c.ref
        for gate in c.gates:
            parts: list[TestOutcome] = [result.tests[t] for t in gate.evidence]
            required = [result.invariants.get(r, "missing") for r in gate.requires]
            inv_outcomes: list[TestOutcome] = [
                "passed" if s == "discharged" else "failed" if s == "failed" else "missing"
                for s in required
            ]
            external: list[TestOutcome] = ["missing" for _ in gate.external_evidence]
            result.gates[gate.id] = combine(parts + inv_outcomes + external)
            if gate.external_evidence:
                result.external[gate.id] = list(gate.external_evidence)
            result.ship_blocking[gate.id] = gate.ship_blocking
            result.contracts[gate.id] = c.ref
    return result
