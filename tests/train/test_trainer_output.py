"""Issue 13, the trainer's rough edges: what a run prints (a header, one verdict line, the
target said once), what it records (the resolved config, the learned vocabulary, plain file
modes), a lone .txt without blank lines, ``--val-percent``, ``trainer export`` keeping an
existing export unless ``--force`` and recording the run's regime, and Ctrl-C exiting 130."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from traingate_cli.trainer_cmd import cli

from traingate.contract.regime import FromScratch
from traingate.runtime.verdict import load_verdict
from traingate.train.checkpoint import load_checkpoint
from traingate.train.config import PretrainConfig
from traingate.train.data import DataError, TextSource
from traingate.train.model import PRESETS
from traingate.train.pretrain import pretrain

TINY_ARGS = ["--batch-size", "2", "--block-size", "32", "--eval-blocks", "2", "--no-progress"]
ONLY = ["--only", "INV-TRAIN-001", "--only", "INV-TRAIN-005"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest)."""


@pytest.fixture
def umask_022() -> Iterator[None]:
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def trainer(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def short_run(data: Path, out: Path, *flags: str) -> Result:
    """Two steps, the short-run invariants, no export, unless ``flags`` say otherwise."""
    head = ["pretrain", "--mode", "from-scratch", "--data", data, "--out", out]
    return trainer(*head, "--max-steps", "2", *ONLY, *TINY_ARGS, *flags)


def tiny(out: Path, data: Path, **fields: object) -> PretrainConfig:
    base: dict[str, object] = {
        "out": out,
        "data": data,
        "batch_size": 2,
        "block_size": 32,
        "eval_blocks": 2,
        "export_onnx": False,
        "only": ["INV-TRAIN-001", "INV-TRAIN-005"],
        "progress": False,
        "max_steps": 3,
    }
    return PretrainConfig(**{**base, **fields})  # type: ignore[arg-type]


# -- what a run prints -------------------------------------------------------------------------


def test_the_end_of_a_run_is_one_verdict_line_and_the_run_dir(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    """The table is `contracts check`'s to print (make demo runs it next): not twice."""
    out = tmp_path / "run"
    result = short_run(corpus["txt"], out, "--no-export")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "verdict: PASS — 2/2 invariants passed, 4 evaluations"
    assert lines[1].startswith(f"run dir: {out}  (steps 2, ")
    assert lines[1].endswith(f"the gate table: contracts check {out}")
    assert len(lines) == 2
    assert "INVARIANT" not in result.stdout and "GATE" not in result.stdout


def test_table_adds_the_gate_table(tmp_path: Path, corpus: dict[str, Path]) -> None:
    result = short_run(corpus["txt"], tmp_path / "run", "--no-export", "--table")
    assert result.exit_code == 0, result.output
    assert "INVARIANT" in result.stdout and "INV-TRAIN-005" in result.stdout
    assert "\nverdict: PASS — 2/2 invariants passed" in result.stdout


def test_a_failing_verdict_line_names_the_first_failure(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    args = ["pretrain", "--mode", "from-scratch", "--data", corpus["txt"], "--out", tmp_path / "r"]
    result = trainer(*args, "--max-steps", "2", "--no-export", *TINY_ARGS)
    assert result.exit_code == 3, result.output
    line = result.stdout.splitlines()[0]
    assert line.startswith("verdict: FAIL — ") and "; INV-TRAIN-003: never evaluated" in line


def test_the_header_then_the_target_said_once(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="traingate"):
        pretrain(tiny(tmp_path / "run", corpus["txt"], eval_every=1, target_val_loss=100.0))
    lines = [r.getMessage() for r in caplog.records]
    (model,) = [m for m in lines if m.startswith("model: ")]
    assert model.startswith("model: tiny, 2 layers × 128 wide (2 heads), context 32, ")
    assert model.endswith(" parameters")
    assert "device: cpu" in lines
    assert "tokenizer: bytes, vocab 257" in lines
    (corpus_line,) = [m for m in lines if m.startswith("corpus: ")]
    docs = list(TextSource(corpus["txt"]).texts())
    assert f": {len(docs)} documents, " in corpus_line
    assert "; train " in corpus_line and ", val " in corpus_line
    assert corpus_line.endswith("(val_percent 5)")
    assert lines.index(model) < min(i for i, m in enumerate(lines) if m.startswith("epoch 0"))
    assert sum(m.startswith("epoch ") for m in lines) == 3
    assert lines.count("target val loss 100.0 reached") == 1


# -- what a run records ------------------------------------------------------------------------


def test_config_json_records_the_resolved_config_and_files_follow_the_umask(
    tmp_path: Path, corpus: dict[str, Path], umask_022: None
) -> None:
    out = tmp_path / "run"
    pretrain(tiny(out, corpus["txt"], block_size=None, max_steps=2))
    config = json.loads((out / "config.json").read_text())
    optional = ("init_from", "reference")  # null: no such input (a fresh start, no reference run)
    nulls = [key for key, value in config.items() if value is None and key not in optional]
    assert not nulls
    assert config["block_size"] == PRESETS["tiny"].block_size
    assert config["eval_every"] == 1 and config["warmup"] == 1
    written = [out / "config.json", out / "verdict.json", out / "metrics.parquet"]
    written += sorted((out / "checkpoints").iterdir())
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert set(modes.values()) == {"0o644"}, modes
    assert stat.S_IMODE((out / "evidence.jsonl").stat().st_mode) == 0o644


def test_a_bpe_larger_than_the_corpus_supports_sizes_the_model_to_what_it_learned(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="traingate"):
        pretrain(tiny(out, corpus["txt"], tokenizer="bpe", vocab_size=262_144, max_steps=2))
    config = json.loads((out / "config.json").read_text())
    learned = config["vocab_size"]
    assert 257 < learned < 20_000
    assert f"vocab: asked 262144, learned {learned}; the model uses {learned}" in caplog.text
    assert config["regime"] == {"kind": "from_scratch", "vocab_size": learned}
    verdict = load_verdict(out)
    assert verdict.regime == FromScratch(learned) and verdict.params["vocab_size"] == learned
    (ckpt,) = sorted((out / "checkpoints").iterdir())[-1:]
    weights = load_checkpoint(ckpt)["model"]
    assert weights["lm_head.weight"].shape == torch.Size([learned, 128])


# -- a lone .txt without blank lines; --val-percent ---------------------------------------------


def test_a_txt_without_blank_lines_has_one_document_per_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(200)]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.INFO, logger="traingate.train.data"):
        source = TextSource(path)
    assert list(source.texts()) == lines
    assert "no blank line between its lines: each line is a document" in caplog.text
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("a\nb\n\nc\nd\n")
    assert list(TextSource(paragraphs).texts()) == ["a\nb", "c\nd"]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "doc.txt").write_text("one document\nof two lines\n")
    assert list(TextSource(folder).texts()) == ["one document\nof two lines"]


def test_a_txt_without_blank_lines_trains(tmp_path: Path, corpus: dict[str, Path]) -> None:
    one_paragraph = tmp_path / "lines.txt"
    docs = list(TextSource(corpus["txt"]).texts())
    one_paragraph.write_text("\n".join(docs) + "\n")
    result = short_run(one_paragraph, tmp_path / "run", "--no-export")
    assert result.exit_code == 0, result.output


def test_an_empty_split_says_what_a_document_is(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text("a single line of text that is one document and lands in one split\n")
    with pytest.raises(DataError, match=r"a \.txt document is a paragraph between blank lines"):
        pretrain(tiny(tmp_path / "run", path))


@pytest.mark.parametrize("value", ["0.5", "51", "abc"])
def test_val_percent_outside_1_to_50_exits_2(
    tmp_path: Path, corpus: dict[str, Path], value: str
) -> None:
    result = short_run(corpus["txt"], tmp_path / "run", "--val-percent", value)
    assert result.exit_code == 2 and "--val-percent" in result.stderr
    assert not (tmp_path / "run").exists()


def test_val_percent_moves_documents_to_val(tmp_path: Path, corpus: dict[str, Path]) -> None:
    result = short_run(corpus["txt"], tmp_path / "run", "--no-export", "--val-percent", "30")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["val_percent"] == 30.0


# -- trainer export ------------------------------------------------------------------------------


def test_export_keeps_an_existing_export_unless_force_and_records_the_regime(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    out = tmp_path / "run"
    assert short_run(corpus["txt"], out, "--no-export").exit_code == 0
    first = trainer("export", out)
    assert first.exit_code == 0, first.output
    verdict = load_verdict(out / "export")
    assert verdict.regime == FromScratch(257)  # the run's, not the Guard's default finetune
    onnx = (out / "model.onnx").read_bytes()

    again = trainer("export", out)
    assert again.exit_code == 2
    assert again.stderr.strip() == (
        f"trainer: {out / 'model.onnx'} already exists: pass --force to overwrite it"
    )
    assert (out / "model.onnx").read_bytes() == onnx

    elsewhere = trainer("export", out, "--onnx", tmp_path / "other.onnx")
    assert elsewhere.exit_code == 2 and "export already holds" in elsewhere.stderr
    assert not (tmp_path / "other.onnx").exists()

    forced = trainer("export", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert load_verdict(out / "export").ok


# -- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_outside_the_training_loop_exits_130(
    tmp_path: Path, corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop turns SIGINT into a checkpoint and 130 itself (test_trainer_cli); before it
    starts (BPE training, corpus building) Ctrl-C is a KeyboardInterrupt: 130 too, not 1."""

    def interrupted(options: PretrainConfig) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("traingate.train.pretrain.pretrain", interrupted)
    result = short_run(corpus["txt"], tmp_path / "run", "--no-export")
    assert result.exit_code == 130, result.output
    assert "Aborted!" not in result.output
