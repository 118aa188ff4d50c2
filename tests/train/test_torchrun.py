"""``trainer pretrain`` under torchrun: two CPU ranks (gloo) reach the same verdicts as one."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from traingate.runtime.verdict import load_verdict
from traingate.train.config import PretrainConfig
from traingate.train.pretrain import pretrain

from .conftest import TrainerProcess

ONLY = ["INV-TRAIN-001", "INV-TRAIN-005"]
STEPS, EVAL_EVERY = 6, 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _val_losses(run_dir: Path) -> list[float]:
    rows = pq.read_table(run_dir / "metrics.parquet").to_pylist()
    return [r["value"] for r in rows if r["point"] == "validation" and r["name"] == "val_loss"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_ranks_under_torchrun_reach_the_single_process_verdicts(
    tmp_path: Path,
    corpus: dict[str, Path],
    trainer_process: TrainerProcess,
) -> None:
    data = corpus["txt"]
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        *trainer_process.argv(data, out, STEPS),
        "--eval-every",
        str(EVAL_EVERY),
        "--batch-size",
        "2",
        "--block-size",
        "32",
        "--eval-blocks",
        "2",
        "--no-export",
        "--no-progress",
        *[arg for inv in ONLY for arg in ("--only", inv)],
    ]
    ran = trainer_process.run(command, timeout=240)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr

    verdict = load_verdict(out)
    assert verdict.ok and verdict.world_size == 2
    assert list(out.rglob("verdict.json")) == [out / "verdict.json"]
    for inv in ONLY:
        assert verdict.invariants[inv].status == "pass", inv
    assert verdict.invariants["INV-TRAIN-001"].evaluations == STEPS
    assert verdict.invariants["INV-TRAIN-005"].evaluations == STEPS // EVAL_EVERY

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = pretrain(
            PretrainConfig(
                out=tmp_path / "single",
                data=data,
                max_steps=STEPS,
                eval_every=EVAL_EVERY,
                batch_size=2,
                block_size=32,
                eval_blocks=2,
                export_onnx=False,
                only=ONLY,
                progress=False,
            )
        )
    finally:
        torch.set_num_threads(threads)
    assert single.verdict.ok
    ddp_val = _val_losses(out)
    assert len(ddp_val) == len(single.val_losses) == STEPS // EVAL_EVERY
    # Effective batch 4 vs 2: not the same trajectory, the same neighbourhood.
    for ddp, one in zip(ddp_val, single.val_losses, strict=True):
        assert ddp == pytest.approx(one, abs=0.5)
