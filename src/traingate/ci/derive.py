"""Re-derive a run's verdict from its evidence, and every way ``verdict.json`` disagrees.

``contracts check`` trusts nothing the run dir says about itself. From ``evidence.jsonl``
it verifies the hash chain line by line and against the head ``verdict.json`` records, then
rebuilds the verdict with the one policy (:mod:`traingate.runtime.verdict`): the last
``start`` event gives the run's identity and each invariant's definition (its
``on_violation``, whether a ship-blocking gate requires it) and the gates; the ``end`` event
gives each invariant's tallies, cross-checked against the ``violation``/``warning`` events
since that start (plus what a ``resume`` event restored); the first ``early_stop`` event
gives the early stop, which the end event must repeat. Each field of ``verdict.json``
that the derived verdict contradicts is a problem that names both values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from traingate.runtime.evidence import EVIDENCE, Chained, RunDirError, read_chained
from traingate.runtime.verdict import (
    SCHEMA_VERSION,
    EarlyStop,
    GateRecord,
    InvariantRecord,
    Verdict,
    Violation,
    failures,
    gate_status,
    invariant_status,
)

IDENTITY = ("contracts", "contract_sha256", "regime", "params", "only", "world_size", "config")
COMPARED = ("status", "evaluations", "violations", "ship_blocking", "on_violation")


@dataclass(frozen=True)
class ExpectedContract:
    """A contract a run must have been gated by: id, version, the file and its sha256."""

    contract: str
    version: str
    path: Path
    sha256: str


@dataclass
class Derived:
    """The verdict rebuilt from evidence (None when the evidence cannot give one), every
    inconsistency found (each fails the run), and notes that do not."""

    verdict: Verdict | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def derive(
    run_dir: Path,
    claimed: Verdict,
    expected: Sequence[ExpectedContract] = (),
    *,
    require_all: bool = False,
) -> Derived:
    """Rebuild ``run_dir``'s verdict from its evidence and compare ``claimed`` with it.

    ``expected`` are the contracts the run must match (same id: same version and sha256);
    with ``require_all`` every one of them must have gated the run.
    """
    path = run_dir / EVIDENCE
    if not path.is_file():
        return Derived(None, [f"{path} is missing: verdict.json cannot be verified"])
    chained = read_chained(path)
    out = Derived(None, list(chained.broken), events=chained.events)
    _check_head(path, chained, claimed, out)
    events = chained.events
    starts = [i for i, e in enumerate(events) if e.get("event") == "start"]
    if not starts:
        out.problems.append(f"{path} has no start event")
        return out
    start, segment = events[starts[-1]], events[starts[-1] + 1 :]
    end = segment[-1] if segment and segment[-1].get("event") == "end" else None
    if end is None:
        out.problems.append(f"{path} does not end with an end event: the run did not close")
        return out
    out.notes += [_config_change_note(e) for e in events if e.get("event") == "config_change"]
    try:
        out.verdict = _rebuild(start, segment, end, out)
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        out.problems.append(f"{path}: its start/end events cannot give a verdict ({exc})")
        return out
    _compare(claimed, out.verdict, out)
    _check_contracts(out.verdict, expected, require_all, out)
    return out


def _check_head(path: Path, chained: Chained, claimed: Verdict, out: Derived) -> None:
    if chained.torn:
        out.problems.append(f"{path}: its last line is torn although verdict.json says it closed")
    if claimed.evidence_head is None:
        out.problems.append(
            f"verdict.json records no evidence hash (schema {claimed.schema_version}; "
            f"traingate writes {SCHEMA_VERSION}): the run cannot be verified, re-run it"
        )
    elif claimed.evidence_head != chained.head:
        out.problems.append(
            f"{path} does not end where verdict.json says (its evidence hash differs): "
            "lines were added, dropped or edited after the run closed"
        )


def _rebuild(
    start: Mapping[str, Any],
    segment: Sequence[Mapping[str, Any]],
    end: Mapping[str, Any],
    out: Derived,
) -> Verdict:
    """The verdict the start and end events give, the end's tallies checked against the
    violations recorded since the start (and the counts a resume restored)."""
    resumes = [e for e in segment if e.get("event") == "resume"]
    restored = resumes[-1].get("tallies", {}) if resumes else {}
    seen: dict[str, int] = {}
    for event in segment:
        if event.get("event") in ("violation", "warning"):
            seen[event["invariant"]] = seen.get(event["invariant"], 0) + 1
    why = {  # what the start said each invariant cannot be given (the `unevaluable` event)
        item["invariant"]: item["reason"]
        for e in segment
        if e.get("event") == "unevaluable"
        for item in e.get("invariants", [])
        if "reason" in item
    }
    invariants = {}
    for inv_id, spec in start["definitions"].items():
        tally = end["tallies"][inv_id]
        recorded = restored.get(inv_id, {}).get("violations", 0) + seen.get(inv_id, 0)
        if tally["violations"] != recorded:
            out.problems.append(
                f"{inv_id}: the end event counts {tally['violations']} violation(s), "
                f"the evidence records {recorded}"
            )
        evaluations, violations = int(tally["evaluations"]), max(tally["violations"], recorded)
        invariants[inv_id] = InvariantRecord(
            status=invariant_status(evaluations, violations, spec["on_violation"]),
            evaluations=evaluations,
            violations=violations,
            worst=tally.get("worst"),
            last=tally.get("last"),
            unevaluable=why.get(inv_id) if not evaluations else None,
            **spec,
        )
    statuses = {inv_id: rec.status for inv_id, rec in invariants.items()}
    gates = {
        gate_id: GateRecord(
            status=gate_status(g["requires"], g["ship_blocking"], statuses, start["excluded"]),
            **g,
        )
        for gate_id, g in start["gates"].items()
    }
    stops = [e for e in segment if e.get("event") == "early_stop"]
    if stops:
        early_stop = {name: stops[0].get(name) for name in EarlyStop.model_fields}
    else:  # a run that stopped before a resume: the resume event carries it
        early_stop = resumes[-1].get("early_stop") if resumes else None
    if end.get("early_stop") != early_stop:
        out.problems.append(
            f"the end event says early_stop: {end.get('early_stop')}, the evidence gives "
            f"{early_stop}"
        )
    aborts = [e for e in segment if e.get("event") == "violation"]
    aborted = next((e for e in reversed(aborts) if e["invariant"] == end["aborted_by"]), None)
    verdict = Verdict(
        schema_version=SCHEMA_VERSION,
        **{name: start.get(name) for name in IDENTITY if start.get(name) is not None},
        excluded=start["excluded"],
        interrupted=end.get("interrupted"),
        crashed=end.get("crashed"),
        evaluations=sum(r.evaluations for r in invariants.values()),
        aborted_by=Violation.model_validate(aborted) if aborted else None,
        early_stop=early_stop,
        last_step=end.get("last_step"),
        last_epoch=end.get("last_epoch"),
        invariants=invariants,
        gates=gates,
    )
    verdict.ok = not failures(verdict)
    if end.get("ok") != verdict.ok:
        out.problems.append(
            f"the end event says ok: {end.get('ok')}, its tallies give {verdict.ok}"
        )
    return verdict


def _compare(claimed: Verdict, derived: Verdict, out: Derived) -> None:
    """A problem for each field of ``claimed`` that ``derived`` contradicts."""

    def differ(what: str, said: Any, found: Any) -> None:
        if said != found:
            out.problems.append(f"{what}: verdict.json says {said!r}, the evidence gives {found!r}")

    for name in IDENTITY:
        differ(name, getattr(claimed, name), getattr(derived, name))
    for name in sorted(set(claimed.invariants) | set(derived.invariants)):
        said, found = claimed.invariants.get(name), derived.invariants.get(name)
        if said is None or found is None:
            where = "the evidence" if said is None else "verdict.json"
            out.problems.append(f"{name}: only {where} tracks it")
            continue
        for attr in COMPARED:
            differ(f"{name} {attr}", getattr(said, attr), getattr(found, attr))
    for name in sorted(set(claimed.gates) | set(derived.gates)):
        said_gate, found_gate = claimed.gates.get(name), derived.gates.get(name)
        differ(
            f"gate {name}",
            said_gate and (said_gate.status, said_gate.ship_blocking),
            found_gate and (found_gate.status, found_gate.ship_blocking),
        )
    differ("crashed", claimed.crashed, derived.crashed)
    differ("interrupted", claimed.interrupted, derived.interrupted)
    differ(
        "aborted_by",
        claimed.aborted_by and claimed.aborted_by.invariant,
        derived.aborted_by and derived.aborted_by.invariant,
    )
    differ(
        "early_stop",
        claimed.early_stop and claimed.early_stop.model_dump(),
        derived.early_stop and derived.early_stop.model_dump(),
    )
    differ("ok", claimed.ok, derived.ok)


def _check_contracts(
    derived: Verdict, expected: Sequence[ExpectedContract], require_all: bool, out: Derived
) -> None:
    """A problem for each expected contract the run was gated by in another version or
    text (and, with ``require_all``, each it was not gated by at all)."""
    for want in expected:
        version = derived.contracts.get(want.contract)
        if version is None:
            if require_all:
                out.problems.append(
                    f"the run was not gated by {want.contract}@{want.version} ({want.path})"
                )
            continue
        if version != want.version:
            out.problems.append(
                f"the run was gated by {want.contract}@{version}; {want.path} is "
                f"{want.contract}@{want.version}"
            )
        elif derived.contract_sha256.get(want.contract) != want.sha256:
            out.problems.append(
                f"the run was gated by {want.contract}@{version} with sha256 "
                f"{str(derived.contract_sha256.get(want.contract))[:12]}…, but {want.path} "
                f"(same version) has {want.sha256[:12]}…: edited without a version bump"
            )


def _config_change_note(event: Mapping[str, Any]) -> str:
    changed = ", ".join(event.get("changes", {}))
    return f"a resume changed the run's {changed} (allowed with --allow-config-change)"


def expected_contracts(paths: Sequence[Path]) -> list[ExpectedContract]:
    """The contracts (id, version, sha256) of the contract files found under ``paths``;
    RunDirError for a file whose id and version cannot be read."""
    import yaml

    from traingate.contract.validation import discover
    from traingate.runtime.binding import file_sha256

    found = []
    for path in discover(list(paths)):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            found.append(
                ExpectedContract(
                    str(data["contract"]), str(data["version"]), path, file_sha256(path)
                )
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise RunDirError(f"{path}: cannot read its contract id and version ({exc})") from None
    return found
