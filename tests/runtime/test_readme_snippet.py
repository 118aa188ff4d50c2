"""The README's loop snippet, pasted as it stands into a small language-model loop, passes
``contracts check``: the Guard's default (the ``pretrain`` preset) holds only invariants such
a loop feeds. Before presets it loaded every shipped contract, and eleven ship-blocking
classifier invariants were never evaluated, so the snippet could never pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from traingate.ci.runcheck import check_run

README = Path(__file__).resolve().parents[2] / "README.md"
VOCAB = 50257  # the snippet's FromScratch(vocab_size=50257)


def readme_loop() -> str:
    """The first python block of the README's "Use it in your loop" section."""
    section = README.read_text(encoding="utf-8").split("## Use it in your loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's loop section has no python block"
    return match.group(1)


class TinyLM(nn.Module):
    """Embedding → linear head: ``model(x, y)`` returns (logits, mean cross-entropy)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, VOCAB)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.embed(x))
        return logits, nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))


def test_the_readme_loop_snippet_passes_contracts_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    monkeypatch.chdir(tmp_path)  # the snippet writes runs/x
    model = TinyLM()
    tokens = torch.randint(0, VOCAB, (120, 1, 5))  # 120 steps: the spike window needs 101
    loader = [(batch[:, :-1], batch[:, 1:]) for batch in tokens]

    def evaluate(m: nn.Module) -> float:
        with torch.no_grad():
            return float(m(*loader[0])[1])

    namespace = {
        "torch": torch,
        "model": model,
        "loader": loader,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-3),
        "evaluate": evaluate,
    }
    exec(compile(readme_loop(), str(README), "exec"), namespace)
    check = check_run(tmp_path / "runs" / "x")
    failed = {i.id: i.status for i in check.invariants if i.status != "pass"}
    assert check.ok, (check.problems, failed)
    loop = {f"INV-TRAIN-00{i}" for i in range(1, 9)}
    assert set(check.verdict.invariants) == loop | {"INV-CONV-001", "INV-CONV-002"}
