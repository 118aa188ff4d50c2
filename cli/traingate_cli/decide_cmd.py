"""``contracts decide RULE_ID --a RUN_A --b RUN_B``: apply a pre-registered A/B decision rule.

Prints every number read (with its file and field), the A − B deltas, the tie test
(σ, |Δ|/σ, MDE), each branch's evaluation, the branch taken and the verdict.
Exit codes: 0 a verdict was reached, 1 no branch holds, 2 bad input (unknown rule,
unreadable sidecar): one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from traingate.contract.loading import LoadedContract, suggest
from traingate.contract.validation import Report
from traingate.decisions import DecisionError, DecisionResult, DecisionRule, evaluate_rule
from traingate_cli.common import PROG, format_option, load_report
from traingate_cli.usage import fail

COMMAND = f"{PROG} decide"


def _num(value: float) -> str:
    return f"{value + 0.0:.6g}"


def find_rule(report: Report, rule_id: str) -> tuple[LoadedContract, DecisionRule]:
    """The one loaded, error-free contract defining ``rule_id``; exits 2 otherwise."""
    found = [
        (lc, rule)
        for lc in report.loaded
        if lc.contract is not None
        for rule in lc.contract.decisions
        if rule.id == rule_id
    ]
    if not found:
        known = sorted(r.id for lc in report.loaded if lc.contract for r in lc.contract.decisions)
        broken = sum(1 for lc in report.loaded if lc.contract is None)
        hint = (
            f"; {broken} contract file(s) did not load (run `contracts validate`)" if broken else ""
        )
        fail(COMMAND, f"no decision rule named {rule_id}{suggest(rule_id, known)}{hint}")
    if len(found) > 1:
        fail(
            COMMAND,
            f"{rule_id} is defined more than once: " + ", ".join(lc.display for lc, _ in found),
        )
    lc, rule = found[0]
    errors = [f for f in report.errors if f.file == lc.display]
    if errors:
        fail(
            COMMAND,
            f"{lc.display} defines {rule_id} but has {len(errors)} validation error(s): "
            f"run `contracts validate {lc.display}`",
        )
    return lc, rule


def render_text(result: DecisionResult, contract_ref: str, display: str) -> list[str]:
    """The report a person reads: every number with where it came from, then the decision."""
    arm_a, arm_b = result.arms
    lines = [
        f"{result.rule}  {result.title}",
        f"  rule in {contract_ref} ({display})",
        f"  A = {arm_a}: {result.run_a}",
        f"  B = {arm_b}: {result.run_b}",
        "",
        "numbers read (each from the run's own sidecar; none typed by hand)",
    ]
    width = max(len(f"{r.metric}.{r.role}") for r in result.readings)
    raw_width = max(len(r.raw) for r in result.readings)
    field_width = max(len(r.field) for r in result.readings)
    for r in result.readings:
        what = f"{r.metric}.{r.role}"
        lines.append(
            f"  {r.run} {what:<{width}}  {r.raw:>{raw_width}}  "
            f"field {r.field:<{field_width}}  of {r.path}"
        )
    lines += ["", "metrics"]
    name_width = max(len(m.name) for m in result.metrics)
    for m in result.metrics:
        better = "higher" if m.higher_is_better else "lower"
        if m.counts_a is not None and m.counts_b is not None:
            a = f"{_num(m.a)}% ({m.counts_a[0]}/{m.counts_a[1]})"
            b = f"{_num(m.b)}% ({m.counts_b[0]}/{m.counts_b[1]})"
        else:
            a, b = _num(m.a), _num(m.b)
        lines.append(f"  {m.name:<{name_width}}  {m.kind}, {better} is better   A {a:<22} B {b}")
    if result.deltas:
        lines += ["", "deltas (A − B; rates in percentage points)"]
        metrics = {m.name: m for m in result.metrics}
        rows = []
        for d in result.deltas:
            m = metrics[d.metric]
            unit = " pp" if d.unit == "pp" else ""
            favours = "favours neither" if d.favours == "neither" else f"favours {d.favours}"
            numbers = f"{_num(m.a)} − {_num(m.b)}"
            rows.append((d.name, f"{d.metric} A − B", numbers, _num(d.value) + unit, favours))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for name, what, numbers, value, favours in rows:
            lines.append(
                f"  {name:<{widths[0]}}  {what:<{widths[1]}}  = {numbers:<{widths[2]}}  "
                f"= {value:<{widths[3]}}  {favours}"
            )
    tie = result.tie
    if tie is not None:
        verdict = (
            f"significant at α = {_num(tie.alpha)} (|Δ|/σ ≥ {_num(tie.z_alpha)})"
            if tie.significant
            else f"not significant at α = {_num(tie.alpha)} (|Δ|/σ < {_num(tie.z_alpha)}): a tie"
        )
        lines += [
            "",
            f"tie test on {tie.metric} (two-proportion z-test, pooled σ)",
            f"  Δ = {_num(tie.delta)} pp   σ = {_num(tie.sigma)} pp   "
            f"|Δ|/σ = {_num(tie.abs_z)}   p = {_num(tie.p_value)}",
            f"  {verdict}",
            f"  MDE = {_num(tie.mde)} pp at α = {_num(tie.alpha)} two-sided, power "
            f"{_num(tie.power)} (σ unpooled {_num(tie.sigma_unpooled)} pp):",
            "  a true difference smaller than the MDE would usually be missed,",
            '  so "no difference" here is not "no effect"',
        ]
    lines += ["", "branches (the first that holds is taken; all are evaluated for the record)"]
    verdict_width = max(len(b.verdict) for b in result.branches)
    for b in result.branches:
        truth = "true " if b.holds else "false"
        mark = "   <- taken" if b.taken else ""
        lines.append(
            f"  {b.index}. {b.verdict:<{verdict_width}}  {truth}  {b.when or 'otherwise'}{mark}"
        )
        if b.when is not None:
            lines.append(f"     {'':<{verdict_width}}         {b.evaluated}")
    lines.append("")
    taken = result.taken
    if taken is None:
        lines.append("verdict: none (no branch holds and the rule has no `otherwise` branch)")
    else:
        lines.append(
            f"verdict: {result.verdict} (branch {taken.index}: {taken.when or 'otherwise'})"
        )
    return lines


@click.command("decide")
@click.argument("rule_id")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--a", "run_a", required=True, type=click.Path(path_type=Path), help="Run A's folder."
)
@click.option(
    "--b", "run_b", required=True, type=click.Path(path_type=Path), help="Run B's folder."
)
@format_option("text", "json")
def decide(rule_id: str, paths: Sequence[Path], run_a: Path, run_b: Path, fmt: str) -> None:
    """Apply decision rule RULE_ID to runs A and B (deltas are A − B), reading their sidecars."""
    report = load_report(paths, None)
    lc, rule = find_rule(report, rule_id)
    assert lc.contract is not None
    try:
        result = evaluate_rule(rule, run_a, run_b)
    except DecisionError as exc:
        fail(COMMAND, str(exc))
    if fmt == "json":
        payload = {"contract": lc.contract.ref, "file": lc.display, **result.to_dict()}
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        for line in render_text(result, lc.contract.ref, lc.display):
            click.echo(line)
    sys.exit(0 if result.verdict is not None else 1)
