"""The GPT: shapes, causality, init statistics (loss ≈ ln V), determinism, optimizer groups."""

from __future__ import annotations

import math

import pytest
import torch

from traingate.train.model import GPT, PRESETS, GPTConfig, build_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matmuls run fastest single-threaded; two threads thrash on a loaded 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(vocab: int, b: int = 4, t: int = 32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (b, t), generator=gen)
    y = torch.randint(0, vocab, (b, t), generator=gen)
    return x, y


def test_presets_have_the_documented_shapes() -> None:
    assert (PRESETS["tiny"].n_layer, PRESETS["tiny"].n_head, PRESETS["tiny"].n_embd) == (2, 2, 128)
    assert PRESETS["tiny"].block_size == 128
    assert (PRESETS["small"].n_layer, PRESETS["small"].n_embd) == (4, 256)
    assert (PRESETS["base"].n_layer, PRESETS["base"].n_embd) == (6, 384)


def test_forward_shapes_with_and_without_targets() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", 257)
    x, y = _batch(257, b=3, t=17)
    logits, loss = model(x, y)
    assert logits.shape == (3, 17, 257)
    assert loss is not None and loss.dim() == 0
    logits_only, none = model(x)
    assert none is None
    assert torch.equal(logits_only, logits)


@pytest.mark.parametrize("vocab", [257, 1024, 8192])
def test_initial_loss_is_near_ln_vocab(vocab: int) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", vocab)
    x, y = _batch(vocab, b=8, t=64)
    _, loss = model(x, y)
    assert loss is not None
    # Near-uniform predictions: the from-scratch cap 2·ln(V) rests on L0 ≈ ln(V).
    assert abs(loss.item() - math.log(vocab)) < 0.1


def test_same_seed_same_weights_and_first_loss_other_seed_differs() -> None:
    x, y = _batch(257)

    def fresh(seed: int) -> tuple[dict[str, torch.Tensor], float]:
        torch.manual_seed(seed)
        model = build_model("tiny", 257)
        _, loss = model(x, y)
        assert loss is not None
        return model.state_dict(), loss.item()

    (w1, l1), (w2, l2), (w3, l3) = fresh(7), fresh(7), fresh(8)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert l1 == l2
    assert not torch.equal(w1["transformer.wte.weight"], w3["transformer.wte.weight"])
    assert l1 != l3


def test_init_statistics_follow_gpt2() -> None:
    torch.manual_seed(0)
    model = build_model("small", 4096)
    assert model.lm_head.weight is model.transformer.wte.weight
    wte_std = model.transformer.wte.weight.std().item()
    assert abs(wte_std - 0.02) < 0.002
    proj = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(proj - 0.02 / math.sqrt(2 * 4)) < 0.001
    assert torch.count_nonzero(model.transformer.h[0].mlp.c_fc.bias) == 0


def test_attention_is_causal() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", 257).eval()
    x, _ = _batch(257, b=2, t=20)
    changed = x.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 257
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)


def test_targets_of_minus_one_are_ignored() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", 257)
    x, y = _batch(257, b=2, t=8)
    masked = y.clone()
    masked[:, 4:] = -1
    logits, loss = model(x, masked)
    expected = torch.nn.functional.cross_entropy(logits[:, :4].reshape(-1, 257), y[:, :4].ravel())
    assert loss is not None and torch.allclose(loss, expected)


def test_a_few_steps_overfit_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", 257)
    opt = model.configure_optimizer(lr=3e-3)
    x, y = _batch(257, b=4, t=16)
    first = None
    for _ in range(30):
        _, loss = model(x, y)
        assert loss is not None
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 1.0


def test_optimizer_decays_matrices_only() -> None:
    model = build_model("tiny", 257)
    opt = model.configure_optimizer(lr=1e-3, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}


def test_sequence_longer_than_block_is_refused() -> None:
    model = build_model("tiny", 257, block_size=16)
    assert model.config.block_size == 16
    with pytest.raises(ValueError, match="exceeds block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model("huge", 257)
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="vocab_size"):
        GPT(GPTConfig(vocab_size=0, block_size=8, n_layer=1, n_head=1, n_embd=8))
