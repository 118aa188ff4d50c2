"""Two gloo ranks on CPU with deferred steps: a NaN on one rank is skipped on every rank.

Without the all-reduced flag rank 0 would apply the step rank 1 skips and the replicas would
drift apart; with it both skip it, keep identical weights, and both raise at the flush.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from traingate.contract.regime import FromScratch
from traingate.runtime.deferred import DeferredSteps
from traingate.runtime.guard import Guard, InvariantViolation

from .conftest import CLASSES, Loop, shipped_finite_step

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORLD = 2
NAN_STEP = 2
BAD_RANK = 1
TIMEOUT = dt.timedelta(seconds=30)


def _worker(rank: int, init_file: str, out: str) -> None:
    store = dist.FileStore(init_file, WORLD)  # no TCP port; a hung collective times out
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD, timeout=TIMEOUT)
    try:
        loop = Loop(seed=0)  # the same model and data on both ranks, no gradient all-reduce
        loop.opt = torch.optim.AdamW(loop.model.parameters(), lr=1e-2, fused=True)
        guard = Guard(regime=FromScratch(CLASSES), only=[shipped_finite_step()])
        steps = DeferredSteps(guard, loop.opt, sync_every=4)
        result: dict[str, Any] = {"raised": None}
        try:
            for step, (x, y) in enumerate(loop.batches(6)):
                loss = torch.nn.functional.cross_entropy(loop.model(x), y)
                if step == NAN_STEP and rank == BAD_RANK:
                    loss = loss * math.nan
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
                steps.step(step, loss=loss.detach(), grad_norm=norm)
                loop.opt.step()
                loop.opt.zero_grad()
        except InvariantViolation as error:
            result["raised"] = error.step
        result["skipped"] = steps.skipped
        result["weights"] = [p.detach().reshape(-1).tolist() for p in loop.model.parameters()]
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")
        dist.barrier()  # neither rank tears its connections down while the other still runs
    finally:
        dist.destroy_process_group()


def test_a_nan_on_one_rank_is_skipped_on_every_rank(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["raised"] for r in results] == [NAN_STEP, NAN_STEP]  # at the flush after step 3
    assert [r["skipped"] for r in results] == [[NAN_STEP], [NAN_STEP]]
    assert results[0]["weights"] == results[1]["weights"]  # the replicas did not drift
