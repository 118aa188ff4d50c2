"""ONNX export of the GPT forward (logits only), its parity check against onnxruntime, and
``trainer export``: a run's latest valid checkpoint → ONNX, gated by C-EXPORT-ONNX.

The exported graph takes ``idx`` (batch, seq) int64 and returns ``logits`` (batch, seq, vocab)
float32, with batch and sequence length dynamic (seq ≤ block_size). Export and parity run on a
CPU fp32 copy in eval mode, so the caller's model (maybe on GPU, maybe training) is untouched.
Parity (max |logit difference| between onnxruntime and torch in fp32 on held-out val text) is
INV-EXPORT-001 of the shipped ``export-onnx-v1`` contract; ``trainer export`` writes its
evidence (``evidence.jsonl``, ``verdict.json``, ``metrics.parquet``) to ``RUN_DIR/export/``,
in the regime the training run recorded, so the training run's own verdict is left as it was.
An existing ONNX file or export verdict is replaced only with ``force``.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from traingate.contract.regime import Finetune, FromScratch, parse_regime
from traingate.contract.shipped import shipped_contracts_dir
from traingate.errors import TraingateError
from traingate.runtime.evidence import EVIDENCE, METRICS, VERDICT, RunDirError
from traingate.runtime.guard import Guard
from traingate.runtime.rundir import holds_run
from traingate.runtime.verdict import Verdict, load_verdict
from traingate.train.checkpoint import latest_valid_checkpoint
from traingate.train.corpus import builtin_corpus_path
from traingate.train.data import DataError, TextSource, validation_set
from traingate.train.model import GPT, GPTConfig
from traingate.train.tokenizer import load_tokenizer

OPSET = 17
EXPORT_CONTRACT = "export-onnx-v1.yaml"
HELDOUT_BLOCKS = 4


class ExportError(TraingateError):
    """The run directory cannot be exported (no checkpoint, no tokenizer, no data)."""


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


def export_with_parity(
    model: GPT, path: Path, heldout: torch.Tensor, n_blocks: int = HELDOUT_BLOCKS
) -> float:
    """Export ``model`` to ``path`` and return its parity (max |logit diff|) on the first
    ``n_blocks`` rows of ``heldout`` (val blocks, one row each), as INV-EXPORT-001 reads it."""
    config = model.config
    export_onnx(model, path, config.block_size, config.vocab_size)
    rows = range(min(n_blocks, heldout.size(0)))
    return onnx_parity(model, path, [heldout[i : i + 1] for i in rows])


def export_run(
    run_dir: Path,
    onnx_path: Path | None = None,
    n_heldout: int = HELDOUT_BLOCKS,
    *,
    force: bool = False,
) -> tuple[Path, float, Verdict]:
    """Export the newest valid checkpoint of ``run_dir``; returns (path, max diff, verdict).

    The parity verdict goes to ``run_dir/export/`` under the run's own regime. An existing
    ONNX file or export verdict is an ExportError unless ``force`` (then both are replaced).
    """
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory")
    target = onnx_path or run_dir / "model.onnx"
    evidence_dir = run_dir / "export"
    if not force and target.exists():
        raise ExportError(f"{target} already exists: pass --force to overwrite it")
    if not force and holds_run(evidence_dir):
        raise ExportError(
            f"{evidence_dir} already holds an export's verdict: pass --force to replace it"
        )
    found = latest_valid_checkpoint(run_dir / "checkpoints")
    if found is None:
        raise ExportError(f"{run_dir / 'checkpoints'}: no valid checkpoint to export")
    _, payload = found
    model = GPT(GPTConfig(**json.loads(payload["model_config"])))
    model.load_state_dict(payload["model"])
    try:
        tokenizer = load_tokenizer(run_dir / "tokenizer")
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"{run_dir}: cannot read the run's tokenizer or config.json ({exc})"
        ) from None
    try:
        # A run dir written before the config was resolved records the built-in corpus as null.
        data = Path(config["data"]) if config.get("data") else builtin_corpus_path()
        source = TextSource(data, column=config.get("text_column", "text"))
        val_x, _ = validation_set(
            source, tokenizer, model.config.block_size, n_heldout, config.get("val_percent", 5.0)
        )
    except DataError as exc:
        raise ExportError(f"held-out text for the parity check: {exc}") from None
    regime = run_regime(run_dir, config)
    diff = export_with_parity(model, target, val_x, n_heldout)
    for name in (EVIDENCE, VERDICT, METRICS):  # only with force: checked above
        (evidence_dir / name).unlink(missing_ok=True)
    contract = [shipped_contracts_dir() / EXPORT_CONTRACT]
    with Guard(contract, regime=regime, run_dir=evidence_dir) as guard:
        guard.final(onnx_max_abs_diff=diff)
    return target, diff, guard.close()


def run_regime(run_dir: Path, config: dict[str, object]) -> Finetune | FromScratch | None:
    """The regime the training run recorded: config.json's, else its verdict's, else None."""
    if isinstance(config.get("regime"), dict):
        try:
            return parse_regime(config["regime"])
        except ValueError:
            pass
    try:
        return load_verdict(run_dir).regime
    except RunDirError:
        return None
