"""The report page: inline CSS, the charts' SVGs and legends, the gate, invariant and
violation tables, and the notes; no script, no external URL."""

from __future__ import annotations

import html
from typing import Any

from traingate.ci.report.charts import flagged
from traingate.ci.report.model import Chart
from traingate.ci.runcheck import RunCheck, describe_decision
from traingate.runtime.verdict import where

MARKS_LISTED = 5  # violations and warnings named in a chart's legend; the table has all

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{font-weight:600;padding:8px 12px;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea;color:#137333}.fail{background:#fce8e6;color:#a50e0e}
.early{background:#fef7e0;color:#b06000;padding:6px 12px;border-radius:4px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.pass,td.ok{color:#137333}td.fail{color:#a50e0e;font-weight:600}
td.warn,td.not_evaluated,td.skip{color:#b06000;font-weight:600}
td.not_applicable,td.not_selected{color:#777}
figure{margin:12px 0 20px}figcaption{font-weight:600;margin-bottom:4px}
.legend{margin:4px 0;overflow-wrap:anywhere}
.legend span{margin-right:14px;font-size:12px;display:inline-block;max-width:100%}
td{overflow-wrap:anywhere}
.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.dash{border-top:2px dashed #d62728;height:0;background:none}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}
dt{font-weight:600}dd{margin:0}code{font-size:12px}
"""


def _cell(value: Any, cls: str = "") -> str:
    attr = f' class="{html.escape(cls)}"' if cls else ""
    return f"<td{attr}>{html.escape(str(value))}</td>"


def _gate_table(check: RunCheck) -> str:
    statuses = {inv.id: inv.status for inv in check.invariants}
    rows = [
        "<tr><th>gate</th><th>status</th><th>ship-blocking</th><th>required invariants</th>"
        "<th>contract</th></tr>"
    ]
    for g in check.gates:
        required = ", ".join(f"{r} ({statuses.get(r, 'not tracked')})" for r in g.requires)
        rows.append(
            f'<tr id="gate-{html.escape(g.id)}">{_cell(g.id)}{_cell(g.status, g.status)}'
            f"{_cell('yes' if g.ship_blocking else 'no')}{_cell(required)}{_cell(g.contract)}</tr>"
        )
    if not check.gates:
        rows.append('<tr><td colspan="5">no gates in the run\'s contracts</td></tr>')
    return '<table id="gates">' + "".join(rows) + "</table>"


def _invariant_table(check: RunCheck) -> str:
    rows = [
        "<tr><th>invariant</th><th>title</th><th>status</th><th>CI outcome</th>"
        "<th>ship-blocking</th><th>at</th><th>evaluations</th><th>violations</th>"
        "<th>worst observed vs limit</th><th>contract</th></tr>"
    ]
    for inv in check.invariants:
        rows.append(
            f'<tr id="inv-{html.escape(inv.id)}">{_cell(inv.id)}{_cell(inv.title)}'
            f"{_cell(inv.status, inv.status)}{_cell(inv.outcome, inv.outcome)}"
            f"{_cell('yes' if inv.ship_blocking else 'no')}{_cell(inv.at)}"
            f"{_cell(inv.evaluations)}{_cell(inv.violations)}{_cell(inv.worst_text())}"
            f"{_cell(inv.contract)}</tr>"
        )
    return '<table id="invariants">' + "".join(rows) + "</table>"


def _violation_table(check: RunCheck, limit: int = 200) -> str:
    events = flagged(check.events)
    if not events:
        return "<p>No violation or warning events in evidence.jsonl.</p>"
    rows = [
        "<tr><th>event</th><th>invariant</th><th>at</th><th>step</th><th>epoch</th>"
        "<th>observed vs limit</th><th>detail</th><th>hint</th></tr>"
    ]
    for e in events[:limit]:
        rows.append(
            "<tr>"
            + _cell(e.get("event"), "fail" if e.get("event") == "violation" else "warn")
            + _cell(e.get("invariant"))
            + _cell(e.get("at"))
            + _cell(e.get("step") if e.get("step") is not None else "")
            + _cell(e.get("epoch") if e.get("epoch") is not None else "")
            + _cell(describe_decision(e))
            + _cell(e.get("detail", ""))
            + _cell(e.get("hint", ""))
            + "</tr>"
        )
    more = f"<p>… {len(events) - limit} more in evidence.jsonl</p>" if len(events) > limit else ""
    return '<table id="violations">' + "".join(rows) + "</table>" + more


def _legend(chart: Chart) -> str:
    e = html.escape
    items = [
        f'<span><i class="sw" style="background:{s.color}"></i>{e(s.label)}</span>'
        for s in chart.series
    ]
    items += [
        f'<span class="limit-label"><i class="sw dash"></i>{e(lim.label)}</span>'
        for lim in chart.limits
    ]
    for m in chart.marks[:MARKS_LISTED]:
        symbol = "✕" if m.y is not None else "▼ (not finite)"
        items.append(f'<span style="color:{m.color}">{symbol} {e(m.label)}</span>')
    if len(chart.marks) > MARKS_LISTED:
        more = len(chart.marks) - MARKS_LISTED
        items.append(f"<span>… {more} more marked (see the violations table)</span>")
    return '<p class="legend">' + "".join(items) + "</p>"


def figure_html(chart: Chart, svg: str, png_name: str) -> str:
    """One chart's figure: caption, inline SVG, legend and a link to its PNG."""
    e = html.escape
    return (
        f'<figure id="chart-{chart.key}"><figcaption>{e(chart.title)}</figcaption>'
        f"{svg}{_legend(chart)}"
        f'<p class="png">PNG: <a href="{e(png_name)}">{e(png_name)}</a></p></figure>'
    )


def page(
    check: RunCheck, title: str, figures: list[str], facts: dict[str, str], notes: list[str]
) -> str:
    """The whole report document: verdict, facts, charts, tables and notes."""
    e = html.escape
    if not figures:
        figures = ["<p>No curves: the run recorded no metrics.</p>"]
    verdict_cls = "ok" if check.ok else "fail"
    verdict_text = "PASS: the run may ship" if check.ok else "FAIL: the run may not ship"
    failures = "".join(f"<li>{e(f)}</li>" for f in check.failures)
    fact_html = "".join(f"<dt>{e(k)}</dt><dd>{e(val)}</dd>" for k, val in facts.items())
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    stop = check.verdict.early_stop  # said under the verdict: the curves end early on purpose
    stop_html = (
        f'<p class="early" id="early-stop">Stopped early{e(where(stop.step, stop.epoch))} by '
        f"{e(stop.invariant)}: {e(stop.reason)}</p>"
        if stop is not None
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>traingate report: {e(title)}</title>
<style>{CSS}</style></head>
<body>
<h1>traingate run report</h1>
<p class="verdict {verdict_cls}" id="verdict">{e(verdict_text)}</p>
{f'<ul id="failures">{failures}</ul>' if failures else ""}
{stop_html}
<dl>{fact_html}</dl>
<h2>Curves</h2>
{"".join(figures)}
<h2>Gates</h2>
{_gate_table(check)}
<h2>Invariants</h2>
{_invariant_table(check)}
<h2>Violations and warnings</h2>
{_violation_table(check)}
{f'<h2>Notes</h2><ul id="notes">{note_html}</ul>' if note_html else ""}
</body></html>
"""
