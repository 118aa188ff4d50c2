"""Running mutants: the contract's falsifiers on each, in-process first, a fresh process after.

A contract's falsifiers first run unmutated (a baseline that fails makes its mutants
meaningless). Then each mutant runs, in one of ``workers`` long-lived worker processes
(:mod:`.inprocess`), the falsifiers that target it: those its contract names in the
``falsified_by`` of the mutated invariant or decision rule, or, for a mutant of a check
module, of the contract's invariants of that kind. A kill there is final. Every other
mutant (one the targeted falsifiers let through, an error, a timeout) runs again in its own
copy and pytest process, targeted falsifiers first and then the rest (:mod:`.fresh`), and
that run's verdict is reported; so a survivor is never reported from the fast path alone.

``fresh=True`` runs everything the old way (each mutant and baseline in its own process).
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from traingate.ci.mutants.code_gen import code_mutants
from traingate.ci.mutants.contract_gen import contract_mutants
from traingate.ci.mutants.fresh import baseline, run_mutant
from traingate.ci.mutants.pool import run_jobs
from traingate.ci.mutants.results import Mutant, MutationReport
from traingate.ci.verify import cited_tests
from traingate.contract.loading import LoadedContract
from traingate.contract.testids import find_root


@dataclass(frozen=True)
class Plan:
    """One contract's project root and the falsifiers it cites."""

    contract: str
    root: Path
    tests: list[str]


def plan_mutation(
    loaded: list[LoadedContract], root: Path | None = None
) -> tuple[MutationReport, dict[str, Plan]]:
    """Every contract's mutants (numbered ``CONTRACT#n``), none run yet, and each plan."""
    report = MutationReport()
    plans: dict[str, Plan] = {}
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
        plans[contract.contract] = Plan(contract.contract, base, cited_tests(contract))
    return report, plans


def targeted_tests(mutant: Mutant, plan: Plan) -> list[str]:
    """The falsifiers that cover what ``mutant`` changed (all the contract's if none do)."""
    return [t for t in mutant.targeted if t in plan.tests] or plan.tests


def run_mutation(
    loaded: list[LoadedContract],
    root: Path | None = None,
    workers: int = 2,
    fresh: bool = False,
) -> MutationReport:
    """Generate every contract's mutants and run its falsifiers on each, ``workers`` at once."""
    start = time.monotonic()
    report, plans = plan_mutation(loaded, root)
    run_planned(report, plans, workers, fresh)
    report.wall_s = time.monotonic() - start
    return report


def run_planned(
    report: MutationReport, plans: dict[str, Plan], workers: int = 2, fresh: bool = False
) -> None:
    """Run the baselines and then ``report.mutants`` (in place); drop a failing contract's."""
    workers = max(1, workers)

    def fresh_run(m: Mutant) -> Mutant:
        return run_mutant(m, plans[m.contract].root, plans[m.contract].tests)

    if fresh:
        with ThreadPoolExecutor(max_workers=workers) as threads:
            runs = {c: threads.submit(baseline, p.root, p.tests) for c, p in plans.items()}
            for contract, future in runs.items():
                if (failure := future.result()) is not None:
                    report.baseline_failures[contract] = failure
            report.mutants = [
                m for m in report.mutants if m.contract not in report.baseline_failures
            ]
            list(threads.map(fresh_run, report.mutants))
        return
    with tempfile.TemporaryDirectory(prefix="traingate-workers-") as tmp:
        scratch = Path(tmp)
        untrusted = run_baselines(report, plans, workers, scratch)
        report.mutants = [m for m in report.mutants if m.contract not in report.baseline_failures]
        fast = [m for m in report.mutants if m.contract not in untrusted]
        jobs = [
            ("mutant", m.edit, plans[m.contract].root, targeted_tests(m, plans[m.contract]))
            for m in fast
        ]
        verdicts = run_jobs(jobs, workers, scratch, lambda job, why: ("error", why))
        for mutant, (verdict, detail) in zip(fast, verdicts, strict=True):
            mutant.decide("in-process", verdict, detail)
    again = [m for m in report.mutants if m.outcome != "killed"]
    with ThreadPoolExecutor(max_workers=workers) as threads:
        list(threads.map(fresh_run, again))


def run_baselines(
    report: MutationReport, plans: dict[str, Plan], workers: int, scratch: Path
) -> set[str]:
    """Each contract's unmutated falsifiers, in the workers; a failure there is confirmed in a
    fresh process (recorded when it fails there too). The contracts whose falsifiers passed
    fresh but not in-process: their mutants skip the in-process path."""
    cited = [p for p in plans.values() if p.tests]
    jobs = [("baseline", p.root, p.tests) for p in cited]
    passed = {
        p.contract: answer is True
        for p, answer in zip(
            cited, run_jobs(jobs, workers, scratch, lambda job, why: False), strict=True
        )
    }
    untrusted: set[str] = set()
    for contract, plan in plans.items():
        if passed.get(contract, False):
            continue
        failure = baseline(plan.root, plan.tests)
        if failure is None:
            untrusted.add(contract)
        else:
            report.baseline_failures[contract] = failure
    return untrusted
