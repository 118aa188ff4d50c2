"""The gradient norm of a model whose gradients are sharded across ranks, before clipping.

Where every rank holds whole gradients (or ``DTensor`` shards) adapters use the Guard's own
:func:`traingate.runtime.host.total_grad_norm`. FSDP1's flat-parameter shards are plain
tensors: :func:`sharded_grad_norm` all-reduces their ``|g|^p`` sums into the norm of the
whole (the HF adapter instead reads the norm the framework's own clipping returns,
``model.clip_grad_norm_``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal


def sharded_grad_norm(
    parameters: Iterable[Any],
    norm_type: float = 2.0,
    *,
    sharded: bool = True,
    group: Any = None,
    device: Any = None,
) -> Any:
    """The ``norm_type`` norm of the whole model's gradients when each rank holds a part.

    ``DTensor`` gradients (FSDP2, tensor parallelism) are reduced over their mesh, as in
    :func:`~traingate.runtime.host.total_grad_norm`. Plain-tensor gradients are, with
    ``sharded=True`` (FSDP1's flat-parameter shards), disjoint pieces of the whole: each
    rank's sum of ``|g|^p`` is all-reduced (``SUM``) over ``group`` and the ``1/p`` power
    taken (the inf norm: the local maxima all-reduced with ``MAX``), in float64, so every
    rank gets the norm of the whole.
    With ``sharded=False`` plain gradients are taken as replicas (counted once, no reduce).
    A shard's padding is zeros and does not change the norm; replicated plain gradients must
    not be passed with ``sharded=True`` (they would be counted once per rank).

    Every rank of ``group`` must call it (it is a collective when the process group is
    initialised with more than one rank), including a rank that holds no gradient; the
    result is a 0-d float32 tensor on ``device`` (default: the first gradient's device, else
    the CPU; NCCL needs the rank's GPU).
    """
    import torch
    import torch.distributed as dist

    plain, distributed = [], []
    for param in parameters:
        if param.grad is None:
            continue
        grad = param.grad.detach()
        (distributed if callable(getattr(grad, "full_tensor", None)) else plain).append(grad)
    if device is None:
        device = (plain or distributed)[0].device if (plain or distributed) else "cpu"
    p = float(norm_type)
    parts = []
    if distributed:  # a DTensor norm is partial over its mesh: full_tensor() reduces it
        parts.append(torch.nn.utils.get_total_norm(distributed, p).full_tensor())
    local = (
        torch.nn.utils.get_total_norm(plain, p).to(device, torch.float64)
        if plain
        else torch.zeros((), dtype=torch.float64, device=device)
    )
    reduce = sharded and dist.is_available() and dist.is_initialized()
    if reduce and dist.get_world_size(group) > 1:
        op = dist.ReduceOp.MAX if math.isinf(p) else dist.ReduceOp.SUM
        local = local if math.isinf(p) else local**p
        dist.all_reduce(local, op=op, group=group)
        local = local if math.isinf(p) else local ** (1.0 / p)
    parts.append(local)
    if len(parts) == 1:
        return parts[0].to(torch.float32)
    whole = torch.stack([t.to(device, torch.float64) for t in parts])
    return torch.linalg.vector_norm(whole, p).to(torch.float32)


def grad_layout(strategy: Any) -> Literal["local", "shards", "dtensor", "engine"]:
    """Where a Lightning ``strategy`` leaves the gradients its hooks can see, so an adapter
    knows which norm is the whole model's.

    ``"local"``: whole copies on every rank (single device, DDP, FSDP1 ``NO_SHARD``,
    DeepSpeed ZeRO-0/1); ``"shards"``: plain-tensor gradients that are disjoint shards
    (FSDP1's flat parameters); ``"dtensor"``: ``DTensor`` shards plus replicated plain
    gradients (``ModelParallelStrategy``: FSDP2, tensor parallelism); ``"engine"``: DeepSpeed
    ZeRO-2/3, whose engine keeps the partitioned gradients in its own buffers (``p.grad`` is
    ``None``). Matched by class name, so no optional package is imported.
    """
    names = {cls.__name__ for cls in type(strategy).__mro__}
    if "ModelParallelStrategy" in names:
        return "dtensor"
    if "FSDPStrategy" in names:
        mode = getattr(getattr(strategy, "sharding_strategy", None), "name", "FULL_SHARD")
        return "local" if mode == "NO_SHARD" else "shards"
    if "DeepSpeedStrategy" in names:
        config = getattr(strategy, "config", None) or {}
        stage = (config.get("zero_optimization") or {}).get("stage", 0)
        return "engine" if stage >= 2 else "local"
    return "local"
