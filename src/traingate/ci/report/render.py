"""Write a run dir's report: the HTML page and a PNG of each chart beside it."""

from __future__ import annotations

from pathlib import Path

from traingate.ci.report.charts import build_charts
from traingate.ci.report.figure import layout
from traingate.ci.report.html import figure_html, page
from traingate.ci.report.mpl import available, chart_png
from traingate.ci.report.png import to_png
from traingate.ci.report.reading import read_metrics, verdict_view
from traingate.ci.report.svg import to_svg
from traingate.ci.runcheck import check_run


def render_report(run_dir: str | Path, out: str | Path, *, matplotlib: bool | None = None) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` and ``<stem>-<chart>.png`` beside it.

    The PNGs are drawn with matplotlib (axes, ticks, labels, legend) when it is installed
    (``pip install 'traingate[report]'``) and by the built-in rasteriser, without text,
    otherwise (``matplotlib=False`` forces that). Raises
    :class:`traingate.ci.runcheck.RunDirError` when the run dir or verdict is unreadable.
    """
    run_dir, out = Path(run_dir), Path(out)
    check = check_run(run_dir)
    view = verdict_view(check)
    rows, metrics_note = read_metrics(run_dir)
    charts, notes = build_charts(check, rows, view.kept)
    notes = ([metrics_note] if metrics_note else []) + notes + check.notes
    plotted = available() if matplotlib is None else matplotlib and available()
    if charts and not plotted:
        notes.append(
            "the chart PNGs have no text (axes and ticks only): matplotlib is not installed "
            "(pip install 'traingate[report]'); the charts on this page are complete"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = []
    for chart in charts:
        fig = layout(chart)
        png_name = f"{out.stem}-{chart.key}.png"
        (out.parent / png_name).write_bytes(chart_png(chart) if plotted else to_png(fig))
        figures.append(figure_html(chart, to_svg(fig, chart.title), png_name))
    facts = {"run dir": str(run_dir), **view.facts}
    if check.audit:
        facts["audited log"] = (
            f"{check.audit.get('source')} ({check.audit.get('replayed')} of "
            f"{check.audit.get('rows')} rows replayed)"
        )
    out.write_text(page(check, str(run_dir), figures, facts, notes), encoding="utf-8")
    return out
