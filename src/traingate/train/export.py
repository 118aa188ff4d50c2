"""ONNX export of the GPT forward (logits only) and a parity check against onnxruntime.

The exported graph takes ``idx`` (batch, seq) int64 and returns ``logits`` (batch, seq, vocab)
float32, with batch and sequence length dynamic (seq ≤ block_size). Export and parity run on a
CPU fp32 copy in eval mode, so the caller's model (maybe on GPU, maybe training) is untouched.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

log = logging.getLogger(__name__)

OPSET = 17


class _LogitsOnly(nn.Module):
    """Wraps a GPT so the exported graph has one input (idx) and one output (logits)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(idx)
        return logits


def _cpu_fp32_copy(model: nn.Module) -> nn.Module:
    """An eval-mode fp32 CPU copy, unwrapped from DDP (``.module``) / compile (``._orig_mod``)."""
    for attr in ("_orig_mod", "module"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            model = inner
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def export_onnx(model: nn.Module, path: str | Path, block_size: int, vocab_size: int) -> Path:
    """Export ``model``'s logits to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _LogitsOnly(_cpu_fp32_copy(model)).eval()
    example = torch.randint(0, vocab_size, (2, block_size), dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy (TorchScript) exporter announces its own deprecation on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            wrapped,
            (example,),
            str(path),
            dynamo=False,
            input_names=["idx"],
            output_names=["logits"],
            dynamic_axes={"idx": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
            opset_version=OPSET,
        )
    return path


def onnx_parity(model: nn.Module, onnx_path: str | Path, batches: list[torch.Tensor]) -> float:
    """Max |logit difference| between torch (CPU, fp32, eval) and onnxruntime (CPU) over
    ``batches`` of token ids (each (batch, seq), seq ≤ block_size)."""
    if not batches:
        raise ValueError("onnx_parity needs at least one batch of token ids")
    reference = _cpu_fp32_copy(model)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for idx in batches:
            idx = idx.to(device="cpu", dtype=torch.long)
            expected, _ = reference(idx)
            (got,) = session.run(["logits"], {"idx": idx.numpy()})
            worst = max(worst, float(np.max(np.abs(got - expected.numpy()))))
    return worst
