"""The report's charts on a realistic pretraining run dir (issue 13).

The run dirs are written by the Guard under the shipped pretraining contract with what
``trainer pretrain`` hands it each step (loss, grad_norm, lr, tokens_per_sec) and a
validation every 100 steps: a loss falling from near ln(257), a gradient norm falling
from 3 to 0.02 under the limit of 100, and a warmup then flat lr.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from traingate import Guard, InvariantViolation
from traingate.ci.report import render_report
from traingate.ci.report.figure import LEFT, RIGHT, WIDTH
from traingate.ci.report.ticks import log_ticks, make_scale, nice_ticks, tick_labels

from .test_report import chromium, png_size, render_in_browser

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "training-loop-pretrain-v1.yaml"
VOCAB = 257
STEPS = 300


def _loss(step: int) -> float:
    return 1.5 + 4.2 * math.exp(-step / 40)


def pretrain_run(run_dir: Path, steps: int = STEPS, spike_at: int | None = None) -> Path:
    """A from-scratch run as ``trainer pretrain`` observes it; ``spike_at``: from that step
    the loss jumps to 4 × and stays there until INV-TRAIN-003 aborts the run."""
    from traingate.contract.regime import FromScratch

    def steps_run(guard: Guard) -> None:
        for step in range(steps):
            loss = _loss(step) * (4 if spike_at is not None and step >= spike_at else 1)
            lr = 3e-4 * min(1.0, (step + 1) / 50)
            guard.step(
                step,
                loss=loss,
                grad_norm=0.02 + 3 * math.exp(-step / 10),
                lr=lr,
                tokens_per_sec=1000.0 + 3 * step,
            )
            if step % 100 == 99:
                guard.validation(step // 100, val_loss=loss + 0.1, step=step)

    guard = Guard([CONTRACT], regime=FromScratch(VOCAB), run_dir=run_dir)
    if spike_at is None:
        with guard:
            steps_run(guard)
    else:
        with pytest.raises(InvariantViolation), guard:
            steps_run(guard)
    return run_dir


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("pretrain")
    out = render_report(pretrain_run(root / "run"), root / "site" / "report.html")
    return out.read_text()


class Svg(HTMLParser):
    """The elements of one chart's SVG (tag, attributes) and its legend's entries."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[tuple[dict[str, str], str]] = []
        self.legend: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "text":
            self.texts.append((values, ""))
        if tag == "span" and "legend" in self._in:
            self.legend.append("")
        self._in.append(values.get("class", "") if tag == "p" else tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "text":
            self.texts[-1] = (self.texts[-1][0], self.texts[-1][1] + data)
        elif "legend" in self._in and self.legend:
            self.legend[-1] += data

    def tagged(self, invariant: str) -> Iterator[tuple[str, dict[str, str]]]:
        return ((t, a) for t, a in self.elements if a.get("data-invariant") == invariant)

    def y_labels(self) -> list[str]:
        return [text for attrs, text in self.texts if attrs.get("text-anchor") == "end"]


def chart(page: str, key: str) -> Svg:
    parser = Svg()
    parser.feed(page.split(f'id="chart-{key}"')[1].split("</figure>")[0])
    return parser


def test_moving_spike_limit_is_one_thin_line_with_a_one_line_legend(page: str) -> None:
    train = chart(page, "train")
    [legend] = [entry for entry in train.legend if "INV-TRAIN-003" in entry]
    assert len(legend) < 120 and "\n" not in legend and " / " not in legend, legend
    assert "moving (steps 100–299)" in legend
    [(tag, attrs)] = train.tagged("INV-TRAIN-003")
    assert tag == "polyline" and attrs["class"] == "limit moving"
    assert float(attrs["stroke-width"]) < 2
    # it starts at the first evaluated step (a full window of 100 losses before it)
    first_x = float(attrs["points"].split()[0].split(",")[0])
    plot = WIDTH - LEFT - RIGHT
    assert first_x == pytest.approx(LEFT + 100 / (STEPS - 1) * plot, abs=1)


def test_initial_loss_band_is_at_step_0_only_with_both_sides(page: str) -> None:
    train = chart(page, "train")
    ln_c = math.log(VOCAB)
    [(_, band)] = [(t, a) for t, a in train.tagged("INV-TRAIN-004") if t == "rect"]
    assert band["data-x0"] == band["data-x1"] == "0"
    assert float(band["data-low"]) == pytest.approx(0.5 * ln_c, rel=1e-5)
    assert float(band["data-high"]) == pytest.approx(1.5 * ln_c, rel=1e-5)
    assert float(band["width"]) <= 0.03 * (WIDTH - LEFT - RIGHT)  # not across the steps
    edges = [a for t, a in train.tagged("INV-TRAIN-004") if t == "line"]
    assert len({a["y1"] for a in edges}) == 2  # the lower and the upper side
    for edge in edges:
        assert float(edge["x2"]) - float(edge["x1"]) <= 0.03 * (WIDTH - LEFT - RIGHT)
        assert float(edge["x1"]) == LEFT  # from the y axis (step 0), not left of it
    [legend] = [entry for entry in train.legend if "INV-TRAIN-004" in entry]
    assert legend.endswith("2.77454 <= loss <= 8.32361 (step 0)"), legend


def test_gradient_norm_axis_is_log_when_it_spans_decades(page: str) -> None:
    grad = chart(page, "grad")
    [(_, svg)] = [(t, a) for t, a in grad.elements if t == "svg"]
    assert svg["data-y-scale"] == "log"
    assert {"0.1", "1", "10", "100"} <= set(grad.y_labels())
    [(_, train)] = [(t, a) for t, a in chart(page, "train").elements if t == "svg"]
    assert train["data-y-scale"] == "linear"  # 1.5 … 8.3: under two decades


def test_lr_and_throughput_charts_are_drawn_when_recorded(page: str) -> None:
    [(_, svg)] = [(t, a) for t, a in chart(page, "lr").elements if t == "svg"]
    assert svg["aria-label"] == "Learning rate per step"
    throughput = chart(page, "throughput")
    assert throughput.legend == ["tokens_per_sec"]
    assert len(set(throughput.y_labels())) == len(throughput.y_labels()) >= 2


def test_y_tick_labels_are_distinct_on_a_short_flat_run(tmp_path: Path) -> None:
    """A three-step finetune (no initial-loss band): the loss moves by 0.001."""
    from traingate.contract.regime import Finetune

    run = tmp_path / "run"
    with Guard([CONTRACT], regime=Finetune(), run_dir=run) as guard:
        for step, loss in enumerate([10.8121, 10.8117, 10.8112]):
            guard.step(step, loss=loss, grad_norm=1.0, lr=1e-4, tokens_per_sec=500.0)
    page = render_report(run, tmp_path / "r.html").read_text()
    for key in ("train", "grad", "lr", "throughput"):
        labels = chart(page, key).y_labels()
        assert len(labels) >= 2 and len(set(labels)) == len(labels), (key, labels)


def test_tick_labels_get_the_digits_they_need() -> None:
    ticks = nice_ticks(10.8105, 10.8125)
    labels = tick_labels(ticks)
    assert len(ticks) >= 2 and len(set(labels)) == len(labels), labels
    assert tick_labels([0.0, 0.5, 1.0]) == ["0", "0.5", "1.0"]
    assert tick_labels([0.0, 1e-4, 2e-4]) == ["0", "1e-04", "2e-04"]
    assert log_ticks(0.01, 150) == [0.01, 0.1, 1.0, 10.0, 100.0]
    assert make_scale([0, 1], [0.02, 100]).log and not make_scale([0, 1], [0.5, 20]).log
    assert not make_scale([0, 1], [-1.0, 100.0]).log  # not all positive


def test_violation_is_marked_where_it_happened_with_its_message(tmp_path: Path) -> None:
    run = pretrain_run(tmp_path / "run", spike_at=200)
    page = render_report(run, tmp_path / "r.html").read_text()
    train = page.split('id="chart-train"')[1].split("</figure>")[0]
    [marker] = re.findall(r'<g class="violation"[^>]*><title>([^<]*)</title>', train)
    assert marker.startswith("INV-TRAIN-003 violation: loss ")
    assert "spike 5 in a row (at most 4 tolerated)" in marker
    x = re.search(r'<g class="violation"[^>]*><title>[^<]*</title><line x1="([\d.]+)"', train)
    assert x is not None
    plot = WIDTH - LEFT - RIGHT
    assert float(x.group(1)) + 6 == pytest.approx(LEFT + 204 / 204 * plot, abs=2)  # step 204


def test_pngs_have_axes_text_and_legend_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    render_report(pretrain_run(tmp_path / "run"), tmp_path / "r.html")
    names = sorted(p.name for p in tmp_path.glob("r-*.png"))
    assert names == [f"r-{k}.png" for k in ("grad", "lr", "throughput", "train", "val")]
    for name in names:
        data = (tmp_path / name).read_bytes()
        width, height = png_size(data)
        assert width == 880 and height > 280  # the chart plus its legend below
        gray = image.open(io.BytesIO(data)).convert("L")
        # dark pixels left of the y axis: the tick labels (the fallback has none there)
        assert sum(gray.crop((0, 20, 55, 220)).histogram()[:128]) > 30, name
        # and below the x axis: its label and the legend
        assert sum(gray.crop((0, 280, width, height)).histogram()[:128]) > 40, name


def test_without_matplotlib_the_pngs_fall_back_and_the_page_says_so(tmp_path: Path) -> None:
    run = pretrain_run(tmp_path / "run", steps=120)
    page = render_report(run, tmp_path / "r.html", matplotlib=False).read_text()
    assert png_size((tmp_path / "r-train.png").read_bytes()) == (880, 280)
    assert "the chart PNGs have no text" in page and "traingate[report]" in page


def test_realistic_report_fits_1400_pixels_in_chromium(page: str, tmp_path: Path) -> None:
    browser = chromium()
    out = tmp_path / "report.html"
    out.write_text(page)
    shot, found = render_in_browser(browser, out, tmp_path)
    assert png_size(shot) == (1400, 2000)
    assert found["gates-visible"] == "true"
    assert int(found["scroll-width"]) <= int(found["client-width"]) == 1400, found
