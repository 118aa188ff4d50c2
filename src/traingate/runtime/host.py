"""Moving the loop's device scalars to the host: one transfer per evaluation point."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def scalar(value: Any) -> float:
    if is_tensor(value):
        return float(value.detach().float().item())
    return float(value)


def to_host(values: list[Any]) -> list[float]:
    """Move a list of scalars to the host in one transfer (one sync), as floats."""
    torch = sys.modules.get("torch")  # no torch imported: no tensors among the values
    if torch is not None and values and all(type(v) is torch.Tensor for v in values):
        # the common case, every value a plain one-element tensor on one device: stack them
        # as they are (type promotion is exact; the float32 cast rounds as one by one would)
        try:
            stacked = torch.stack(values)
        except RuntimeError:  # devices or shapes differ: one by one, below
            pass
        else:
            if stacked.ndim != 1 and stacked.numel() == len(values):  # one-element, not 0-d
                stacked = stacked.reshape(-1)
            if stacked.ndim == 1:  # one value each (0-d tensors stack to one dimension)
                if stacked.dtype != torch.float32:
                    stacked = stacked.to(torch.float32)
                return stacked.tolist()
    tensors = [v for v in values if is_tensor(v)]
    if not tensors:
        return [float(v) for v in values]
    import torch

    device = tensors[0].device
    stacked = torch.stack(
        [
            v.detach().reshape(()).to(device=device, dtype=torch.float32)
            if is_tensor(v)
            else torch.tensor(float(v), device=device)
            for v in values
        ]
    )
    return stacked.tolist()


def total_grad_norm(parameters: Iterable[Any], norm_type: float = 2.0) -> Any:
    """The ``norm_type`` norm of all the parameters' gradients together, as a 0-d tensor on
    device (no sync). ``DTensor`` gradients (FSDP2, tensor parallelism) are reduced over
    their mesh (``full_tensor()``), so every rank sees the whole model's norm."""
    import torch

    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.nn.utils.get_total_norm(grads, norm_type)
    full_tensor = getattr(norm, "full_tensor", None)  # a DTensor: reduce the shards' norms
    return full_tensor() if callable(full_tensor) else norm
