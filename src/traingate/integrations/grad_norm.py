"""The total gradient norm of a model, measured before any clipping, on device (no sync).

Framework adapters use it when the framework does not clip (and so reports no norm). With
FSDP2 or tensor parallelism the gradients are ``DTensor`` shards: their norm is reduced
over the mesh (``full_tensor()``), so every rank sees the norm of the whole model. FSDP1's
flat-parameter shards are plain tensors; there the adapter reads the norm the framework's
own clipping returns (``model.clip_grad_norm_``), not this helper.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def total_grad_norm(parameters: Iterable[Any], norm_type: float = 2.0) -> Any:
    """The ``norm_type`` norm of all the parameters' gradients together, as a 0-d tensor."""
    import torch

    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.nn.utils.get_total_norm(grads, norm_type)
    full_tensor = getattr(norm, "full_tensor", None)  # a DTensor: reduce the shards' norms
    return full_tensor() if callable(full_tensor) else norm
