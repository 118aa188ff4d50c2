"""``render_report`` / ``contracts report``: HTML with inline SVG, PNG charts, headless render."""

from __future__ import annotations

import ast
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import report

from traingate import Guard, InvariantViolation
from traingate.checks import REGISTRY
from traingate.ci.report import LIMIT_COLOR, Canvas, render_report
from traingate.ci.report.charts import chart_key
from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime.evidence import MetricsBuffer

CI = Path(__file__).resolve().parents[2] / "src" / "traingate" / "ci"

CONTRACT = """\
contract: C-TEST-REPORT
version: 3.0.1
title: Report test contract
status: active
changelog:
  - {version: 3.0.1, date: 2026-01-01, change: "first"}
parameters:
  vocab_size: {type: int, min: 2}
invariants:
  - id: INV-REP-005
    title: Non-divergence
    check: non_divergence
    at: validation
    params:
      epoch_zero_cap: {finetune: "10.0", from_scratch: "2 * ln(vocab_size)"}
      ratio_limit: 2.0
    on_violation: abort
  - id: INV-REP-001
    title: Finite <loss> & "grads" <script>alert(1)</script>
    check: finite
    at: step
    params: {observations: [loss]}
    on_violation: abort
  - id: INV-REP-007
    title: Loss balance
    check: loss_balance
    at: validation
    params: {source: val_components, max_share: 0.9}
    on_violation: warn
gates:
  - {id: GATE-REP-005, requires: [INV-REP-005], ship_blocking: true}
  - {id: GATE-REP-001, requires: [INV-REP-001], ship_blocking: true}
  - {id: GATE-REP-007, requires: [INV-REP-007], ship_blocking: false}
"""


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "report.yaml"
    path.write_text(CONTRACT)
    return path


def aborted_run(contract: Path, run_dir: Path) -> Path:
    """Seed 003 under finetune: 20 steps near ln(50257), then val loss 10.8 > cap 10."""
    with (
        pytest.raises(InvariantViolation),
        Guard([contract], regime=Finetune(), run_dir=run_dir) as g,
    ):
        for step in range(20):
            g.step(step, loss=11.2 - 0.02 * step)
        g.validation(0, val_loss=10.8, val_components={"lm": 10.0, "aux": 0.8})
    return run_dir


def passing_run(contract: Path, run_dir: Path) -> Path:
    """A from-scratch run with three validations; one dominated epoch warns (advisory)."""
    with Guard([contract], regime=FromScratch(50257), run_dir=run_dir) as guard:
        for epoch, (val, comps) in enumerate(
            [(10.5, {"a": 6.0, "b": 4.5}), (9.0, {"a": 8.5, "b": 0.5}), (8.0, {"a": 4.0, "b": 4.0})]
        ):
            for step in range(epoch * 10, epoch * 10 + 10):
                guard.step(step, loss=11.0 - 0.1 * step)
            guard.validation(epoch, val_loss=val, val_components=comps)
    return run_dir


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_pixels(data: bytes) -> list[bytes]:
    """Rows of RGB pixels of a PNG this project wrote (8-bit RGB, filter 0 rows)."""
    width, height = png_size(data)
    chunks, offset = [], 8
    while offset < len(data):
        length, tag = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        crc = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])[0]
        assert zlib.crc32(tag + body) == crc, f"bad CRC in {tag!r}"
        if tag == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    assert all(raw[y * stride] == 0 for y in range(height))
    return [raw[y * stride + 1 : (y + 1) * stride] for y in range(height)]


class Tables(HTMLParser):
    """Collects the text of each table's cells, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self.tables[self._table][-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._table is not None and self.tables[self._table] and self.tables[self._table][-1]:
            self.tables[self._table][-1][-1] += data


def test_report_has_gate_table_cap_line_and_violation(contract: Path, tmp_path: Path) -> None:
    run_dir = aborted_run(contract, tmp_path / "run")
    out = render_report(run_dir, tmp_path / "out" / "report.html")
    page = out.read_text()
    parser = Tables()
    parser.feed(page)
    gates = {row[0]: row for row in parser.tables["gates"][1:]}
    assert gates["GATE-REP-005"][1:3] == ["fail", "yes"]
    assert gates["GATE-REP-005"][3] == "INV-REP-005 (fail)"
    assert gates["GATE-REP-007"][1:3] == ["warn", "no"]  # advisory: lm is 92.6 %
    invariants = {row[0]: row for row in parser.tables["invariants"][1:]}
    assert invariants["INV-REP-005"][8] == "10.8 (must be <= 10)"
    # the finetune epoch-0 cap drawn as a limit line on the validation chart
    val_chart = page.split('id="chart-val"')[1].split("</figure>")[0]
    assert "INV-REP-005 epoch-0 cap &lt;= 10 (" in val_chart
    assert 'class="limit"' in val_chart and 'class="violation"' in val_chart
    assert "FAIL: the run may not ship" in page


def test_report_is_self_contained_and_escaped(contract: Path, tmp_path: Path) -> None:
    out = render_report(aborted_run(contract, tmp_path / "run"), tmp_path / "r.html")
    page = out.read_text()
    assert not re.search(r"https?://|<script|<link|<img|src=", page)
    assert "Finite &lt;loss&gt; &amp; &quot;grads&quot; &lt;script&gt;" in page


def test_pngs_are_valid_and_show_the_limit(contract: Path, tmp_path: Path) -> None:
    # the built-in rasteriser (no matplotlib): pixels this test can read back
    out = render_report(
        passing_run(contract, tmp_path / "run"), tmp_path / "r.html", matplotlib=False
    )
    names = sorted(p.name for p in tmp_path.glob("r-*.png"))
    assert names == ["r-train.png", "r-val.png", "r-val_shares.png"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert png_size(data) == (880, 280)
    red = bytes(int(LIMIT_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    shares = png_pixels((tmp_path / "r-val_shares.png").read_bytes())
    assert sum(row.count(red) for row in shares) > 100  # the 0.9 share limit and the warning
    page = out.read_text()
    assert "INV-REP-007 limit &lt;= 0.9" in page  # the same limit at every recorded evaluation
    assert "INV-REP-007 warning: a is 94.4% of the summed raw loss" in page


def test_exact_limit_series_is_drawn_when_recorded(contract: Path, tmp_path: Path) -> None:
    run_dir = passing_run(contract, tmp_path / "run")
    buffer = MetricsBuffer()
    for epoch, (val, limit) in enumerate([(10.5, 21.64), (9.0, 21.0), (8.0, 18.0)]):
        buffer.add("validation", None, epoch, {"val_loss": val, "limit/INV-REP-005": limit})
    buffer.write(run_dir)
    page = render_report(run_dir, tmp_path / "r.html").read_text()
    val_chart = page.split('id="chart-val"')[1].split("</figure>")[0]
    assert "INV-REP-005 epoch-0 cap &lt;= 21.64 (epoch 0)" in val_chart
    assert "ratio limit (ratio × previous epoch) &lt;= 18 / 21 (epochs 1, 2)" in val_chart
    assert (
        val_chart.count('class="limit"') == 3
    )  # the cap, then two ratio limits, each at its epoch
    assert "epoch-0 cap is not drawn" not in page


def test_canvas_png_round_trips_pixels() -> None:
    canvas = Canvas(7, 5)
    canvas.line((0, 2), (6, 2), (255, 0, 0))
    rows = png_pixels(canvas.png())
    assert rows[2] == b"\xff\x00\x00" * 7
    assert rows[0] == b"\xff" * 21


def test_report_cli_writes_next_to_the_run_and_exits_2_on_bad_input(
    contract: Path, tmp_path: Path
) -> None:
    run_dir = aborted_run(contract, tmp_path / "run")
    runner = CliRunner()
    outcome = runner.invoke(report, [str(run_dir)])
    assert outcome.exit_code == 0, outcome.output
    assert (run_dir / "report.html").is_file() and (run_dir / "report-val.png").is_file()
    outcome = runner.invoke(report, [str(tmp_path / "missing")])
    assert outcome.exit_code == 2 and "no such run directory" in outcome.output
    (run_dir / "verdict.json").write_text("{")
    outcome = runner.invoke(report, [str(run_dir)])
    assert outcome.exit_code == 2 and "verdict.json: corrupt JSON" in outcome.output


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium() -> str:
    """The headless browser, or skip (fail under CI) when there is none."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no chromium binary is on PATH (install Debian's chromium)")
        pytest.skip("no chromium binary on PATH: the headless render test needs one")
    return browser


# a test-only script: the shipped report itself stays script-free
PROBE = (
    "<script>const t=document.getElementById('gates');const r=t.getBoundingClientRect();"
    "const d=document.documentElement;const b=document.body.dataset;"
    "b.gatesVisible=String(r.width>0&&r.height>0&&getComputedStyle(t).visibility==='visible');"
    "b.scrollWidth=String(d.scrollWidth);b.clientWidth=String(d.clientWidth);</script></body>"
)


def headless(browser: str, profile: Path, *args: str, width: int = 1400) -> str:
    """Run headless chromium at ``width`` × 2000 pixels; its stdout."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},2000",
    ]
    return subprocess.run(
        [browser, *flags, *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def render_in_browser(browser: str, out: Path, tmp_path: Path) -> tuple[bytes, dict[str, str]]:
    """A 1400-pixel-wide screenshot of the page at ``out`` and the probe's findings on a
    copy of it (gates table visible, the document's scroll and client widths)."""
    shot = tmp_path / "shot.png"
    headless(browser, tmp_path / "profile", f"--screenshot={shot}", out.as_uri())
    probe = out.with_name("probe.html")
    probe.write_text(out.read_text().replace("</body>", PROBE))
    dom = headless(browser, tmp_path / "profile", "--dump-dom", probe.as_uri())
    found = dict(re.findall(r'data-(gates-visible|scroll-width|client-width)="([^"]*)"', dom))
    found["dom"] = dom
    return shot.read_bytes(), found


def test_report_renders_in_headless_chromium(contract: Path, tmp_path: Path) -> None:
    browser = chromium()
    out = render_report(aborted_run(contract, tmp_path / "run"), tmp_path / "site" / "report.html")
    shot, found = render_in_browser(browser, out, tmp_path)
    assert png_size(shot) == (1400, 2000)
    assert found["gates-visible"] == "true"
    assert int(found["scroll-width"]) <= int(found["client-width"]), found  # no h-overflow
    table = found["dom"].split('<table id="gates">')[1].split("</table>")[0]
    for gate in ("GATE-REP-005", "GATE-REP-001", "GATE-REP-007"):
        assert gate in table


def test_non_finite_loss_breaks_the_curve_and_is_marked_at_the_top(
    contract: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvariantViolation), Guard([contract], run_dir=tmp_path / "run") as guard:
        for step, loss in enumerate([2.0, 1.9, 1.8, float("nan")]):
            guard.step(step, loss=loss)
    page = render_report(tmp_path / "run", tmp_path / "r.html").read_text()
    train = page.split('id="chart-train"')[1].split("</figure>")[0]
    assert "<polygon" in train and "▼ (not finite) INV-REP-001 violation" in train
    svg = train.split("<svg")[1].split("</svg>")[0]
    coords = re.findall(r'(?:points|cx|cy|x1|y1|x2|y2)="([^"]*)"', svg)
    assert coords and not any("nan" in c for c in coords)  # the NaN step is not plotted


@pytest.mark.parametrize(
    "kind", [k for k, check in sorted(REGISTRY.items()) if check.drawing is not None]
)
def test_every_declared_limit_drawing_has_a_chart(kind: str) -> None:
    for at in ("step", "validation"):
        assert chart_key(REGISTRY[kind].drawing, at) is not None, (kind, at)


@pytest.mark.parametrize("package", ["report", "audit"])
def test_report_and_audit_name_no_check_kind(package: str) -> None:
    """What a kind needs drawn or observed is declared on the kind, never matched by name."""
    named = [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for path in sorted((CI / package).glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in REGISTRY
    ]
    assert not named, named
