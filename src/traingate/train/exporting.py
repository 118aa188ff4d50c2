"""``trainer export``: a run's latest valid checkpoint → ONNX, with parity enforced.

Parity (max |logit difference| between onnxruntime and torch in fp32 on held-out val text)
is an invariant of the shipped ``export-onnx-v1`` contract; its evidence goes to
``RUN_DIR/export/`` so the training run's own verdict is left as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traingate.contract.shipped import shipped_contracts_dir
from traingate.runtime.guard import Guard
from traingate.train.checkpoint import latest_valid_checkpoint
from traingate.train.data import DataError, TextSource, validation_set
from traingate.train.export import export_onnx, onnx_parity
from traingate.train.model import GPT, GPTConfig
from traingate.train.tokenizer import load_tokenizer

EXPORT_CONTRACT = "export-onnx-v1.yaml"


class ExportError(Exception):
    """The run directory cannot be exported (no checkpoint, no tokenizer, no data)."""


def export_run(
    run_dir: Path, onnx_path: Path | None = None, n_heldout: int = 4
) -> tuple[Path, float, dict[str, Any]]:
    """Export the newest valid checkpoint of ``run_dir``; returns (path, max diff, verdict)."""
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory")
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
        from traingate.train.corpus import builtin_corpus_path

        data = (
            Path(config["data"])
            if config.get("data") not in (None, "None")
            else builtin_corpus_path()
        )
        source = TextSource(data, column=config.get("text_column", "text"))
        val_x, _ = validation_set(
            source, tokenizer, model.config.block_size, n_heldout, config.get("val_percent", 5.0)
        )
    except DataError as exc:
        raise ExportError(f"held-out text for the parity check: {exc}") from None
    target = onnx_path or run_dir / "model.onnx"
    export_onnx(model, target, model.config.block_size, model.config.vocab_size)
    diff = onnx_parity(model, target, [val_x[i : i + 1] for i in range(val_x.size(0))])
    with Guard([shipped_contracts_dir() / EXPORT_CONTRACT], run_dir=run_dir / "export") as guard:
        guard.final(onnx_max_abs_diff=diff)
    return target, diff, guard.close()
