"""grad_norm: the norm of the whole model's gradients when ranks hold disjoint shards.

The 2-rank test runs a script in a subprocess that spawns two gloo ranks on CPU (a free
port, a deadline). Each rank holds one half of a parameter's gradient as a plain tensor
(FSDP1's flat-parameter layout), a ``DTensor`` gradient sharded with ``Shard(0)`` on a CPU
``DeviceMesh`` (FSDP2/TP layout), or both; every rank must get the norm of the whole
gradient, which the test compares with the unsharded norm. The Lightning callback's own
dispatch (``FSDPStrategy`` -> shards) is exercised on the same ranks. Lightning refuses
``FSDPStrategy`` on a CPU accelerator, so no Lightning FSDP fit runs here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from traingate.integrations.grad_norm import grad_layout, sharded_grad_norm
from traingate.runtime.host import total_grad_norm

from .conftest import free_port, run_script

SCRIPT = r"""
import json, math, os, sys, warnings
import torch, torch.distributed as dist, torch.multiprocessing as mp

NORMS = [2.0, 1.0, math.inf]


def grads():
    g = torch.Generator().manual_seed(0)
    return torch.randn(10, 3, generator=g), torch.randn(6, 4, generator=g) * 5


def work(rank, port, out):
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from traingate.integrations.grad_norm import sharded_grad_norm

    flat, full = grads()
    shard = torch.nn.Parameter(torch.zeros(5, 3))
    shard.grad = flat[rank * 5 : (rank + 1) * 5].clone()  # this rank's disjoint half
    mesh = init_device_mesh("cpu", (2,))
    dt = torch.nn.Parameter(distribute_tensor(torch.zeros(6, 4), mesh, [Shard(0)]))
    dt.grad = distribute_tensor(full, mesh, [Shard(0)])
    assert dt.grad.to_local().shape == (3, 4)
    empty = torch.nn.Parameter(torch.zeros(2))  # a rank may hold no gradient at all
    seen = {"local_shard_2": torch.linalg.vector_norm(shard.grad).item()}
    for p in NORMS:
        seen[f"plain_{p}"] = sharded_grad_norm([shard], p).item()
        seen[f"dtensor_{p}"] = sharded_grad_norm([dt], p).item()
        seen[f"mixed_{p}"] = sharded_grad_norm([shard, empty, dt], p).item()
    seen["replicated_2"] = sharded_grad_norm([shard], sharded=False).item()
    held = [shard] if rank == 0 else [empty]  # rank 1 holds nothing: still takes part
    seen["one_rank_2"] = sharded_grad_norm(held).item()
    bad = torch.nn.Parameter(torch.zeros(2))
    bad.grad = torch.tensor([1.0, float("inf") if rank == 1 else 0.0])
    seen["inf_on_one_rank_2"] = sharded_grad_norm([shard, bad]).item()

    # the Lightning callback's dispatch: FSDPStrategy -> plain grads are shards
    from lightning.pytorch.strategies import FSDPStrategy
    from traingate.integrations.lightning import TraingateCallback

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shard = shard

    class Trainer:
        strategy = FSDPStrategy(parallel_devices=[torch.device("cpu")] * 2)
        model = Module()  # the strategy's wrapped model

    seen["callback_fsdp_2"] = TraingateCallback()._grad_norm(Trainer(), None).item()
    with open(os.path.join(out, f"rank-{rank}.json"), "w") as f:
        json.dump(seen, f)
    dist.barrier()  # neither rank tears its gloo connections down while the other still runs
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(work, args=(int(sys.argv[1]), sys.argv[2]), nprocs=2)
"""


def norm(t: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten().double(), p).float()


def close(got: float, expected: torch.Tensor) -> None:
    torch.testing.assert_close(torch.tensor(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_ranks_with_disjoint_shards_get_the_whole_norm(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    proc = run_script(tmp_path, "shards.py", SCRIPT, str(free_port()), str(tmp_path), timeout=100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    g = torch.Generator().manual_seed(0)  # the script's grads(): the unsharded gradients
    flat, full = torch.randn(10, 3, generator=g), torch.randn(6, 4, generator=g) * 5
    both = torch.cat([flat.flatten(), full.flatten()])
    for rank, seen in enumerate(ranks):
        for p in (2.0, 1.0, math.inf):
            close(seen[f"plain_{p}"], norm(flat, p))
            close(seen[f"dtensor_{p}"], norm(full, p))
            close(seen[f"mixed_{p}"], norm(both, p))
        half = flat[rank * 5 : (rank + 1) * 5]
        close(seen["local_shard_2"], norm(half, 2.0))  # what the plain norm would report
        assert seen["local_shard_2"] < seen["plain_2.0"]
        close(seen["replicated_2"], norm(half, 2.0))
        close(seen["one_rank_2"], norm(flat[:5], 2.0))
        assert seen["inf_on_one_rank_2"] == math.inf  # one rank's inf reaches every rank
        close(seen["callback_fsdp_2"], norm(flat, 2.0))


def test_without_a_process_group_it_is_the_local_norm() -> None:
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))
    a.grad, b.grad = torch.tensor([3.0, 0.0, 4.0]), torch.full((2, 2), 2.0)
    for p in (2.0, 1.0, math.inf):
        expected = total_grad_norm([a, b], p)
        torch.testing.assert_close(sharded_grad_norm([a, b], p), expected)
    torch.testing.assert_close(sharded_grad_norm([torch.nn.Parameter(torch.ones(2))]), 0.0 * a[0])


def test_the_callback_picks_the_norm_by_strategy() -> None:
    pytest.importorskip("lightning")
    from lightning.pytorch.strategies import (
        DDPStrategy,
        FSDPStrategy,
        ModelParallelStrategy,
        SingleDeviceStrategy,
    )

    class DeepSpeedStrategy:  # the real one needs deepspeed installed: matched by name
        def __init__(self, stage: int) -> None:
            self.config: dict[str, Any] = {"zero_optimization": {"stage": stage}}

    assert grad_layout(SingleDeviceStrategy("cpu")) == "local"
    assert grad_layout(DDPStrategy()) == "local"
    assert grad_layout(FSDPStrategy()) == "shards"
    assert grad_layout(FSDPStrategy(sharding_strategy="SHARD_GRAD_OP")) == "shards"
    assert grad_layout(FSDPStrategy(sharding_strategy="NO_SHARD")) == "local"
    assert grad_layout(ModelParallelStrategy()) == "dtensor"
    assert grad_layout(DeepSpeedStrategy(1)) == "local"
    assert grad_layout(DeepSpeedStrategy(3)) == "engine"
