"""A trainer run with more steps than data: the stream cycles with one log line and one
``data_cycled`` evidence event per wrap, and the losses stay real (INV-TRAIN-007 passes)."""

from __future__ import annotations

import logging
from itertools import pairwise
from pathlib import Path

import pytest

from traingate.ci.runcheck import check_run
from traingate.runtime.evidence import read_evidence
from traingate.runtime.guard import Guard
from traingate.runtime.verdict import load_verdict
from traingate.train.pretrain import pretrain

from .test_pretrain import config

INVARIANTS = ["INV-TRAIN-001", "INV-TRAIN-005", "INV-TRAIN-007", "INV-TRAIN-008"]
STEPS = 30


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """One torch thread (see conftest)."""


def tiny_corpus(root: Path) -> Path:
    """Twenty short documents: a few hundred bytes of train split, a few passes in 30 steps."""
    docs = [f"document {i}: a fox, {i * 7}" for i in range(20)]
    path = root / "tiny.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def test_a_run_longer_than_its_data_records_each_wrap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    data = tiny_corpus(tmp_path)
    more = {"block_size": 16, "eval_blocks": 1, "val_percent": 50.0, "only": INVARIANTS}
    cfg = config(out, data, max_steps=STEPS, **more)
    with caplog.at_level(logging.INFO, logger="traingate.train.data"):
        result = pretrain(cfg)
    events = list(read_evidence(out / "evidence.jsonl"))
    cycled = [e for e in events if e["event"] == "data_cycled"]
    wraps = [r for r in caplog.records if "cycling to pass" in r.getMessage()]
    assert len(cycled) >= 2 and len(cycled) == len(wraps)  # one log line, one event, per wrap
    assert [e["pass_index"] for e in cycled] == list(range(1, len(cycled) + 1))
    tokens = {e["tokens_in_pass"] for e in cycled}
    assert len(tokens) == 1 and tokens.pop() < STEPS * 2 * 16  # same data each pass, < the run
    steps = [e["step"] for e in cycled]
    assert steps == sorted(steps) and 0 < steps[0] < STEPS and len(set(steps)) == len(steps)
    assert all(e["batch"] == e["step"] for e in cycled)  # a fresh run: batch i is step i
    # the losses are real: no two consecutive ones equal, and INV-TRAIN-007 judged every step
    losses = result.train_losses
    assert len(losses) == STEPS and all(a != b for a, b in pairwise(losses))
    verdict = load_verdict(out)
    assert verdict.ok
    placeholder = verdict.invariants["INV-TRAIN-007"]
    assert placeholder.status == "pass" and placeholder.evaluations == STEPS - 4
    assert verdict.invariants["INV-TRAIN-008"].evaluations == STEPS
    check = check_run(out)
    assert check.ok, check.problems  # contracts check accepts the new event kind


def test_record_event_refuses_the_guards_own_kinds(tmp_path: Path) -> None:
    seen: list[str] = []
    with Guard(
        only=["INV-TRAIN-001"], run_dir=tmp_path, listeners=[lambda e: seen.append(e.kind)]
    ) as guard:
        guard.record_event("data_cycled", step=3, pass_index=1)
        with pytest.raises(ValueError, match="'violation' is the Guard's own"):
            guard.record_event("violation", step=3)
        guard.step(3, loss=1.5, grad_norm=0.5)
    kinds = [e["event"] for e in read_evidence(tmp_path / "evidence.jsonl")]
    assert kinds.count("data_cycled") == 1 and "violation" not in kinds
    assert "data_cycled" in seen
    assert check_run(tmp_path).ok
