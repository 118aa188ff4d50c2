"""The reference pretraining loop, in process: determinism, exact resume, corrupt-checkpoint
recovery, finetune initialisation, and a full default-contract run with export."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest

from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict
from traingate.train.config import PretrainConfig, UsageError
from traingate.train.pretrain import PretrainResult, pretrain
from traingate.train.tokenizer import load_tokenizer

TINY = {"batch_size": 2, "block_size": 32, "eval_blocks": 2, "export_onnx": False}
SHORT_RUN_INVARIANTS = ["INV-TRAIN-001", "INV-TRAIN-005"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest)."""


def config(out: Path, data: Path, **overrides: object) -> PretrainConfig:
    """A tiny run over ``data``: batch 2 × block 32, no export, short-run invariants only."""
    fields: dict[str, object] = {
        **TINY,
        "out": out,
        "data": data,
        "only": SHORT_RUN_INVARIANTS,
        "progress": False,
    }
    fields.update(overrides)
    return PretrainConfig(**fields)  # type: ignore[arg-type]


N = 3  # checkpoint interval of the resume tests; their runs have 2N steps


def two_intervals(out: Path, data: Path) -> PretrainConfig:
    """A 2N-step run that checkpoints and validates every N steps."""
    return config(out, data, max_steps=2 * N, checkpoint_every=N, eval_every=N)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, Path]) -> PretrainResult:
    """An uninterrupted 2N-step run that checkpoints and validates every N steps."""
    out = tmp_path_factory.mktemp("reference")
    return pretrain(two_intervals(out, corpus["txt"]))


def test_same_seed_gives_identical_steps_and_another_seed_does_not(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    runs = [
        pretrain(config(tmp_path / name, corpus["txt"], max_steps=5, seed=seed))
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    assert len(runs[0].train_losses) == 5
    assert runs[0].train_losses == runs[1].train_losses
    assert runs[0].val_losses == runs[1].val_losses
    assert runs[2].train_losses[0] != runs[0].train_losses[0]
    assert runs[2].train_losses != runs[0].train_losses


def test_parquet_and_txt_of_the_same_documents_train_identically(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    txt = pretrain(config(tmp_path / "txt", corpus["txt"], max_steps=3))
    parquet = pretrain(config(tmp_path / "parquet", corpus["parquet"], max_steps=3))
    assert parquet.train_losses == txt.train_losses
    assert parquet.verdict.ok and txt.verdict.ok


Finished = tuple[PretrainConfig, PretrainResult]


@pytest.fixture
def finished(tmp_path: Path, corpus: dict[str, Path]) -> Finished:
    """A fresh 2N-step run in ``tmp_path`` (its config's ``out``), and its config (to resume it)."""
    cfg = two_intervals(tmp_path, corpus["txt"])
    return cfg, pretrain(cfg)


def resume(cfg: PretrainConfig, caplog: pytest.LogCaptureFixture) -> PretrainResult:
    """``cfg``'s run again with resume on, its INFO logs captured."""
    cfg.resume = True
    with caplog.at_level(logging.INFO, logger="traingate.train"):
        return pretrain(cfg)


def test_resume_continues_exactly_where_the_uninterrupted_run_went(
    finished: Finished, reference: PretrainResult, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, first = finished
    assert first.train_losses == reference.train_losses  # same seed, fresh dir
    (cfg.out / "checkpoints" / f"step-{2 * N:08d}.pt").unlink()
    (cfg.out / "verdict.json").unlink()

    resumed = resume(cfg, caplog)

    assert f"step-{N:08d}.pt at step {N}" in caplog.text
    assert resumed.steps == 2 * N
    assert resumed.train_losses == reference.train_losses[N:]
    assert resumed.val_losses == reference.val_losses
    assert resumed.verdict.ok
    events = list(read_evidence(cfg.out / "evidence.jsonl"))
    resume_events = [e for e in events if e["event"] == "resume"]
    assert len(resume_events) == 1
    assert resume_events[0]["step"] == N and resume_events[0]["epoch"] == 0
    assert [e["event"] for e in events].count("end") == 2
    assert load_verdict(cfg.out).ok


def test_a_truncated_newest_checkpoint_is_skipped_for_the_previous_one(
    finished: Finished, reference: PretrainResult, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, _ = finished
    newest = cfg.out / "checkpoints" / f"step-{2 * N:08d}.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    resumed = resume(cfg, caplog)

    skipped = [r for r in caplog.records if r.levelno == logging.WARNING and "skipping" in r.msg]
    assert len(skipped) == 1 and str(newest) in skipped[0].getMessage()
    assert "truncated" in skipped[0].getMessage()
    assert f"step-{N:08d}.pt at step {N}" in caplog.text
    assert resumed.steps == 2 * N
    assert resumed.train_losses == reference.train_losses[N:]
    assert resumed.verdict.ok
    from traingate.train.checkpoint import load_checkpoint

    assert load_checkpoint(newest)["step"] == 2 * N  # rewritten whole by the resumed run


def test_resume_with_no_checkpoint_starts_fresh(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="traingate.train"):
        result = pretrain(config(tmp_path, corpus["txt"], max_steps=2, resume=True))
    assert "no valid checkpoint" in caplog.text
    assert result.steps == 2 and len(result.train_losses) == 2


def test_finetune_without_init_from_warns_that_the_weights_are_random(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="traingate.train"):
        result = pretrain(config(tmp_path, corpus["txt"], mode="finetune", max_steps=2))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("finetune without --init-from" in w and "random" in w for w in warnings)
    assert result.train_losses[0] == pytest.approx(math.log(257), abs=0.5)


BPE_VOCAB = 400


@pytest.fixture(scope="module")
def bpe_source(tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, Path]) -> PretrainResult:
    """A BPE run (not the default bytes) trained hard enough to leave chance well behind."""
    result = pretrain(
        config(
            tmp_path_factory.mktemp("bpe-source"),
            corpus["txt"],
            tokenizer="bpe",
            vocab_size=BPE_VOCAB,
            max_steps=40,
            lr=3e-3,
            warmup=2,
            eval_every=40,
        )
    )
    assert result.train_losses[0] == pytest.approx(math.log(BPE_VOCAB), abs=0.5)
    assert result.val_losses[-1] < math.log(BPE_VOCAB) - 1.0
    return result


def _finetune_from(
    out: Path, data: Path, checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> PretrainResult:
    with caplog.at_level(logging.WARNING, logger="traingate.train"):
        tuned = pretrain(config(out, data, mode="finetune", init_from=checkpoint, max_steps=2))
    assert "random" not in caplog.text
    return tuned


def _assert_initialised_from(
    tuned: PretrainResult, source: PretrainResult, out: Path, source_tokenizer: Path
) -> None:
    # Trained weights, not chance: a 2-step finetune at lr 5e-5 validates where its source ended.
    assert tuned.train_losses[0] < math.log(BPE_VOCAB) - 0.5
    assert tuned.val_losses[0] < math.log(BPE_VOCAB) - 1.0
    assert tuned.val_losses[0] == pytest.approx(source.val_losses[-1], abs=0.05)
    tokenizer = load_tokenizer(out / "tokenizer")
    assert tokenizer.fingerprint == load_tokenizer(source_tokenizer).fingerprint
    assert json.loads((out / "config.json").read_text())["vocab_size"] == BPE_VOCAB
    assert tuned.verdict.ok


def test_init_from_loads_weights_and_the_tokenizer_beside_the_checkpoint(
    tmp_path: Path,
    corpus: dict[str, Path],
    bpe_source: PretrainResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_tokenizer = bpe_source.checkpoints[-1].parents[1] / "tokenizer"
    exported = tmp_path / "exported"
    shutil.copytree(run_tokenizer, exported / "tokenizer")
    shutil.copy(bpe_source.checkpoints[-1], exported / "model.pt")
    tuned = _finetune_from(tmp_path / "tuned", corpus["txt"], exported / "model.pt", caplog)
    _assert_initialised_from(tuned, bpe_source, tmp_path / "tuned", run_tokenizer)


def test_init_from_a_previous_runs_checkpoint_finds_that_runs_tokenizer(
    tmp_path: Path,
    corpus: dict[str, Path],
    bpe_source: PretrainResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkpoint = bpe_source.checkpoints[-1]
    tuned = _finetune_from(tmp_path / "tuned", corpus["txt"], checkpoint, caplog)
    _assert_initialised_from(
        tuned, bpe_source, tmp_path / "tuned", checkpoint.parents[1] / "tokenizer"
    )


def test_init_from_a_checkpoint_without_a_tokenizer_folder_is_a_usage_error(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    source = pretrain(config(tmp_path / "source", corpus["txt"], max_steps=1))
    lone = tmp_path / "lone" / "step.pt"
    lone.parent.mkdir()
    lone.write_bytes(source.checkpoints[-1].read_bytes())
    with pytest.raises(UsageError, match="no tokenizer"):
        pretrain(config(tmp_path / "tuned", corpus["txt"], mode="finetune", init_from=lone))
