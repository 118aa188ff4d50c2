"""ONNX export: a dynamic-length graph whose logits match torch within 1e-4 on held-out text."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from traingate.train.corpus import builtin_corpus_path
from traingate.train.data import TextSource, TokenStream, validation_set
from traingate.train.model import GPT, build_model
from traingate.train.onnx_export import export_onnx, onnx_parity
from traingate.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[GPT, torch.Tensor]:
    """A tiny model trained a few steps on stdlib docstrings, and held-out (val) blocks."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAINGATE_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        source = TextSource(builtin_corpus_path(max_files=40))
    finally:
        mp.undo()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model("tiny", TOK.vocab_size)
        opt = model.configure_optimizer(lr=1e-2)
        stream = TokenStream(source, TOK, batch_size=4, block_size=64, val_percent=20)
        for _ in range(15):
            x, y = next(stream)
            _, loss = model(x, y)
            assert loss is not None
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    held_out, _ = validation_set(source, TOK, block_size=128, n_blocks=12, val_percent=20)
    return model, held_out


def test_parity_on_held_out_text_is_within_1e_4(
    trained: tuple[GPT, torch.Tensor], tmp_path: Path
) -> None:
    model, held_out = trained
    model.train()
    path = export_onnx(model, tmp_path / "tiny.onnx", block_size=128, vocab_size=257)
    assert model.training  # the caller's model is untouched
    # Different batch sizes and sequence lengths through one graph: both axes are dynamic.
    batches = [held_out[:8], held_out[8:12, :37], held_out[:1, :1]]
    diff = onnx_parity(model, path, batches)
    assert diff <= 1e-4
    with torch.no_grad():
        logits, _ = model.eval()(held_out[:8])
    assert logits.abs().max() > 1.0  # trained logits: parity is not trivially small


def test_graph_is_valid_with_symbolic_axes(
    trained: tuple[GPT, torch.Tensor], tmp_path: Path
) -> None:
    model, _ = trained
    path = export_onnx(model, tmp_path / "sub" / "m.onnx", block_size=128, vocab_size=257)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    (inp,) = graph.graph.input
    (out,) = graph.graph.output
    assert (inp.name, out.name) == ("idx", "logits")
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "seq"]
    assert out.type.tensor_type.shape.dim[2].dim_value == 257


def test_parity_detects_a_model_that_differs(
    trained: tuple[GPT, torch.Tensor], tmp_path: Path
) -> None:
    model, held_out = trained
    path = export_onnx(model, tmp_path / "m.onnx", block_size=128, vocab_size=257)
    torch.manual_seed(1)
    other = build_model("tiny", 257)
    assert onnx_parity(other, path, [held_out[:2]]) > 1e-2
    with pytest.raises(ValueError, match="at least one batch"):
        onnx_parity(model, path, [])
