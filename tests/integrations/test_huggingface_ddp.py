"""TraingateCallback in a Hugging Face Trainer under DDP: 2 gloo ranks on CPU.

Two processes are started the way ``torchrun`` starts them (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so ``TrainingArguments`` and accelerate set
up a gloo process group and the Trainer wraps the tiny GPT-2 in DDP. Each process runs three
trainings one after the other in the same process group (one start-up pays for all three):

- ``healthy``: 8 steps, both ranks finish, one verdict that ``contracts check`` passes;
- ``stop``: rank 1's loss turns NaN at step 3 (a NaN constant added to the loss, so its
  gradients, and after DDP's all-reduce everybody's, stay finite: only rank 1 sees it), in
  ``on_violation="stop"``: the Guard's all-reduce must stop rank 0 at the same step too;
- ``raise``: the same bad rank in the default ``"raise"`` mode: both ranks raise
  ``InvariantViolation`` out of ``trainer.train()`` at the same step.

The processes have a deadline: a rank left waiting in a collective fails the test instead
of hanging it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from traingate.ci.runcheck import check_run
from traingate.runtime.evidence import read_evidence
from traingate.runtime.verdict import load_verdict

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

WORLD = 2
BAD_RANK, BAD_STEP = 1, 3
DEADLINE_S = 120

SCRIPT = r"""
import json, os, sys, warnings
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

from traingate import FromScratch, InvariantViolation
from traingate.contract.shipped import shipped_contracts_dir
from traingate.integrations.huggingface import TraingateCallback

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
hf_logging.set_verbosity_error()
out = Path(sys.argv[1])
RANK = int(os.environ["RANK"])
BAD_RANK, BAD_STEP, VOCAB = __BAD_RANK__, __BAD_STEP__, 64


class Tokens(torch.utils.data.Dataset):
    def __init__(self, rows, seed):
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (rows, 16), generator=gen)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class BadRank(Trainer):
    '''Rank BAD_RANK's loss is NaN at optimizer step BAD_STEP (0-based); its gradients stay
    finite. The weights are kept as they were before that step's first micro-batch.'''

    bad = False
    before_bad = None

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = super().compute_loss(model, inputs, *args, **kwargs)
        if self.bad and self.state.global_step == BAD_STEP:
            if self.before_bad is None:
                self.before_bad = {n: p.detach().clone() for n, p in self.model.named_parameters()}
            if RANK == BAD_RANK:
                loss = loss + torch.tensor(float("nan"))
        return loss


def run(name, bad, on_violation):
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=32)
    gate = TraingateCallback(
        [shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"],
        on_violation=on_violation,
        regime=FromScratch(vocab_size=VOCAB),
        run_dir=out / name / "run",
        only=["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-005"],
    )
    args = TrainingArguments(
        output_dir=str(out / name / "out"), max_steps=8, per_device_train_batch_size=4,
        per_device_eval_batch_size=8, gradient_accumulation_steps=2, learning_rate=1e-3,
        eval_strategy="steps", eval_steps=4, save_strategy="no", logging_steps=1,
        report_to=[], use_cpu=True, seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = gate.attach(BadRank(
        model=GPT2LMHeadModel(config), args=args,
        train_dataset=Tokens(64, seed=1), eval_dataset=Tokens(16, seed=2),
    ))
    trainer.bad = bad
    raised = None
    try:
        trainer.train()
    except InvariantViolation as exc:
        raised = exc
    violation = raised or gate.violation
    record = violation.record if violation is not None else None
    (out / name / f"rank-{RANK}.json").write_text(json.dumps({
        "world": trainer.args.world_size,
        "ddp": type(trainer.model_wrapped).__name__,
        "raised": raised is not None,
        "invariant": record.invariant_id if record else None,
        "step": record.step if record else None,
        "rank": record.rank if record else None,
        "global_step": trainer.state.global_step,
        "unchanged": trainer.before_bad is not None and all(
            torch.equal(trainer.before_bad[n], p.detach())
            for n, p in trainer.model.named_parameters()
        ),
    }))


run("healthy", False, "raise")
run("stop", True, "stop")
run("raise", True, "raise")
torch.distributed.barrier()  # neither rank tears its gloo connections down while the other runs
torch.distributed.destroy_process_group()
""".replace("__BAD_RANK__", str(BAD_RANK)).replace("__BAD_STEP__", str(BAD_STEP))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the script on 2 ranks (torchrun's environment); the folder with what they wrote."""
    out = tmp_path_factory.mktemp("hf-ddp")
    script = out / "hf_ddp_run.py"
    script.write_text(SCRIPT, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK")}
    base.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
        PYTHONWARNINGS="ignore",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    procs = []
    for rank in range(WORLD):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        log = (out / f"rank-{rank}.log").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                cwd=out,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + DEADLINE_S
    hung = False
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            hung = True
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = "\n".join(
        f"--- rank {r} (exit {p.returncode}) ---\n"
        + (out / f"rank-{r}.log").read_text(errors="replace")[-3000:]
        for r, p in enumerate(procs)
    )
    assert not hung, f"a rank did not exit within {DEADLINE_S} s:\n{logs}"
    assert all(p.returncode == 0 for p in procs), logs
    return out


def ranks(out: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads((out / name / f"rank-{r}.json").read_text()) for r in range(WORLD)]


def test_a_healthy_ddp_run_writes_one_verdict_that_passes(ddp_runs: Path) -> None:
    seen = ranks(ddp_runs, "healthy")
    for s in seen:
        assert (s["world"], s["ddp"]) == (WORLD, "DistributedDataParallel")
        assert s["invariant"] is None and s["global_step"] == 8
    run = ddp_runs / "healthy" / "run"
    assert [p.relative_to(ddp_runs) for p in ddp_runs.glob("healthy/**/verdict.json")] == [
        Path("healthy/run/verdict.json")
    ]
    verdict = load_verdict(run)
    assert verdict.world_size == WORLD and verdict.ok
    assert verdict.invariants["INV-TRAIN-001"].evaluations == 8
    assert verdict.invariants["INV-TRAIN-005"].evaluations == 2
    events = [e["event"] for e in read_evidence(run / "evidence.jsonl")]
    assert events.count("start") == events.count("end") == 1  # one writer: rank 0
    result = check_run(run)
    assert result.ok, result


@pytest.mark.parametrize("mode", ["stop", "raise"])
def test_one_bad_rank_stops_both_ranks_before_the_bad_step(ddp_runs: Path, mode: str) -> None:
    seen = ranks(ddp_runs, mode)
    for s in seen:
        assert s["world"] == WORLD
        assert (s["invariant"], s["step"], s["rank"]) == ("INV-TRAIN-001", BAD_STEP, BAD_RANK)
        assert s["raised"] is (mode == "raise")
        assert s["unchanged"]  # neither rank applied the bad step
    # "stop" counts the dropped step, then the loop ends; "raise" leaves before counting it
    expected_steps = BAD_STEP + 1 if mode == "stop" else BAD_STEP
    assert [s["global_step"] for s in seen] == [expected_steps] * WORLD
    assert len(list(ddp_runs.glob(f"{mode}/**/verdict.json"))) == 1
    verdict = load_verdict(ddp_runs / mode / "run")
    assert verdict.world_size == WORLD and not verdict.ok
    assert verdict.aborted_by is not None and verdict.crashed is None
    assert (verdict.aborted_by.invariant, verdict.aborted_by.rank) == ("INV-TRAIN-001", BAD_RANK)
    assert verdict.last_step == BAD_STEP
    assert not check_run(ddp_runs / mode / "run").ok
