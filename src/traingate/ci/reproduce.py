"""``contracts check RUN --reference REF``: re-decide the ``reproducible`` invariants.

Nothing the run says of itself is trusted: each ``reproducible`` invariant of the expected
contracts is decided again, with the same pure function the Guard runs
(:func:`traingate.checks.reproducible.check_reproducible`), on the step values of both run
dirs' ``metrics.parquet``. Asking for a reference makes the comparison required for this
check: a violation fails it (exit 1) whatever ``on_violation`` and the gate say, and a run
whose own verdict, against the same reference, says otherwise is a problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from traingate.checks import Decision
from traingate.checks.decision import CheckContext
from traingate.checks.reproducible import Reproducible
from traingate.ci.derive import ExpectedContract
from traingate.ci.runcheck import InvariantResult, RunCheck
from traingate.contract.regime import Finetune
from traingate.contract.schema import Contract, Invariant
from traingate.contract.shipped import ContractError, load_valid
from traingate.runtime.evidence import RunDirError
from traingate.runtime.reference import read_reference

__all__ = ["reproducible_invariants", "with_reference"]


def reproducible_invariants(
    expected: Sequence[ExpectedContract],
) -> list[tuple[Contract, Invariant]]:
    """The ``reproducible`` invariants of the expected contracts' files, in file order;
    RunDirError when a file is invalid or none defines one."""
    found = []
    for want in expected:
        try:
            contract = load_valid(want.path)
        except ContractError as exc:
            raise RunDirError(f"{want.path}: {str(exc).splitlines()[0]}") from None
        found += [(contract, i) for i in contract.invariants if i.check == Reproducible.kind]
    if not found:
        raise RunDirError(
            "--reference: none of the contracts defines a reproducible invariant; pass "
            "--contracts with C-TRAIN-REPRODUCIBLE (contracts/reproducibility-v1.yaml)"
        )
    return found


def with_reference(
    check: RunCheck, reference: Path, expected: Sequence[ExpectedContract]
) -> RunCheck:
    """``check`` with every ``reproducible`` invariant re-decided from ``check.run_dir``'s
    and ``reference``'s metrics (replacing what the run recorded of it); RunDirError when
    either run's metrics, or the contracts, cannot be read."""
    ours, theirs = read_reference(check.run_dir), read_reference(reference)
    context = CheckContext(check.verdict.regime or Finetune(), check.verdict.params)
    recorded = _recorded_reference(check.events)
    same = recorded is not None and Path(recorded).resolve() == reference.resolve()
    by_id = {inv.id: k for k, inv in enumerate(check.invariants)}
    for contract, inv in reproducible_invariants(expected):
        decision = Reproducible.decision(
            run=ours.values, reference=theirs.values, params=inv.params, context=context
        )
        result = _result(contract, inv, decision, reference)
        if inv.id in by_id:
            before = check.invariants[by_id[inv.id]]
            if same and before.evaluations and (before.violations == 0) != decision.ok:
                check.problems.append(
                    f"{inv.id}: the run's verdict says {before.status} against {reference}, "
                    f"its metrics.parquet give {'pass' if decision.ok else 'a violation'}"
                )
            check.invariants[by_id[inv.id]] = result
        else:
            check.invariants.append(result)
    check.notes.append(
        f"reproducible invariants re-decided from {check.run_dir / 'metrics.parquet'} "
        f"(seed {ours.seed}) against {theirs.source / 'metrics.parquet'} (seed {theirs.seed})"
    )
    return check


def _result(
    contract: Contract, inv: Invariant, decision: Decision, reference: Path
) -> InvariantResult:
    """The CI outcome of one re-decided invariant: pass, or fail naming the reference."""
    ok = decision.ok
    worst = {k: getattr(decision, k) for k in ("observed", "limit", "comparison", "detail")}
    status = "pass" if ok else "fail"
    reason = "" if ok else f"not reproduced against {reference}: {decision.detail}"
    # id, title, contract, check, at, status, ship_blocking, evaluations, violations, worst,
    # first_violation, outcome, reason: one evaluation, required (a violation fails)
    return InvariantResult(
        *(inv.id, inv.title, contract.ref, inv.check, inv.at, status, False, 1, int(not ok)),
        *(worst, None if ok else worst, status, reason),
    )


def _recorded_reference(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The reference path the run's last start event records (None: it had none)."""
    starts = [e for e in events if e.get("event") == "start"]
    reference = starts[-1].get("reference") if starts else None
    return str(reference["path"]) if isinstance(reference, Mapping) else None
