"""Render a :class:`~traingate.ci.runcheck.RunCheck`: a text table for people, JSON, GitHub
workflow annotations, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from traingate.ci.runcheck import (
    InvariantResult,
    RunCheck,
    describe_decision,
    location_of,
)
from traingate.contract.regime import FromScratch


def render_text(check: RunCheck) -> str:
    """A table for people: invariant, status, evaluations, worst vs limit, contract@version."""
    regime = check.verdict.regime
    head = f"run {check.run_dir}"
    if regime is not None:
        head += f"  regime {regime.kind}"
        if isinstance(regime, FromScratch):
            head += f" (vocab_size={regime.vocab_size})"
    rows = [("INVARIANT", "STATUS", "BLOCKING", "EVALS", "WORST OBSERVED vs LIMIT", "CONTRACT")]
    for inv in check.invariants:
        rows.append(
            (
                inv.id,
                inv.status,
                "ship-blocking" if inv.ship_blocking else "advisory",
                str(inv.evaluations),
                inv.worst_text(),
                inv.contract,
            )
        )
    lines = [head, *_table(rows)]
    if check.gates:
        gate_rows = [("GATE", "STATUS", "BLOCKING", "REQUIRES")]
        for g in check.gates:
            gate_rows.append(
                (
                    g.id,
                    g.status,
                    "ship-blocking" if g.ship_blocking else "advisory",
                    ", ".join(g.requires),
                )
            )
        lines += ["", *_table(gate_rows)]
    lines.append("")
    lines += [f"note: {n}" for n in check.notes]
    lines += [
        f"warning: {inv.id}: {inv.reason}"
        for inv in check.invariants
        if inv.outcome in ("warn", "skip")
    ]
    lines += [f"FAIL: {reason}" for reason in check.failures]
    passed = sum(1 for inv in check.invariants if inv.outcome == "pass")
    lines.append(
        f"{'FAILED' if check.failures else 'OK'}: {passed}/{len(check.invariants)} invariants "
        f"passed, {check.verdict.evaluations} evaluations"
    )
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_json(check: RunCheck) -> str:
    """Everything the decision used, as indented JSON (NaN/inf stay strings)."""
    return json.dumps(check.to_dict(), indent=2, default=str)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def _violation_text(inv: InvariantResult) -> str:
    event = inv.first_violation
    if event:
        return f"{event.get('detail', '')}{location_of(event)} [{describe_decision(event)}]"
    return f"worst {inv.worst_text()}" if inv.worst else ""


def render_github(check: RunCheck) -> str:
    """GitHub workflow commands: ``::error`` per failure, ``::warning`` per advisory issue."""
    lines = []
    for problem in check.problems:
        lines.append(f"::error title={_gh_prop('traingate run')}::{_gh_data(problem)}")
    for inv in check.invariants:
        if inv.outcome == "pass":
            continue
        level = "error" if inv.outcome == "fail" else "warning"
        detail = _violation_text(inv) if inv.status in ("fail", "warn") else ""
        message = f"{inv.title} ({inv.contract}): {inv.reason}" + (f": {detail}" if detail else "")
        lines.append(f"::{level} title={_gh_prop(inv.id)}::{_gh_data(message)}")
    lines.append(render_text(check).splitlines()[-1])
    return "\n".join(lines)


def render_junit(check: RunCheck) -> str:
    """JUnit XML: one testcase per invariant plus one for the run as a whole."""
    suite = ET.Element("testsuite", name=f"traingate {check.run_dir}")
    counts = {"tests": 0, "failures": 0, "skipped": 0}

    def case(name: str, classname: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", name=name, classname=classname, time="0")

    run_case = case("run", "traingate")
    if check.problems:
        counts["failures"] += 1
        failure = ET.SubElement(run_case, "failure", message=check.problems[0], type="run")
        failure.text = "\n".join(check.problems)
    for inv in check.invariants:
        element = case(f"{inv.id} {inv.title}".strip(), inv.contract or "traingate")
        body = (
            f"status: {inv.status}\nship_blocking: {inv.ship_blocking}\n"
            f"evaluations: {inv.evaluations}\nworst: {inv.worst_text()}\n"
            f"{_violation_text(inv)}"
        ).strip()
        if inv.outcome == "fail":
            counts["failures"] += 1
            failure = ET.SubElement(element, "failure", message=inv.reason, type=inv.status)
            failure.text = body
        elif inv.outcome == "skip":
            counts["skipped"] += 1
            ET.SubElement(element, "skipped", message=inv.reason)
        elif inv.outcome == "warn":
            ET.SubElement(element, "system-out").text = f"warning: {inv.reason}\n{body}"
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    root = ET.Element("testsuites", name="traingate", tests=str(counts["tests"]))
    root.set("failures", str(counts["failures"]))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


RENDERERS = {
    "text": render_text,
    "json": render_json,
    "github": render_github,
    "junit": render_junit,
}
