"""Tokenizers: exact round trips, a reserved end-of-text id, BPE save/load with identical ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traingate.train.tokenizer import (
    EOT_TEXT,
    BPETokenizer,
    ByteTokenizer,
    load_tokenizer,
    train_bpe,
)

CORPUS = [
    "Return the number of items in a container.",
    "Open the file and return a stream; raise OSError upon failure.",
    "The quick brown fox jumps over the lazy dog.\n\n    Indented block with\ttabs.",
    "Unicode: héllo wörld ☃ 🎉 — naïve café, 日本語のテキスト.",
    "def f(x):\n    return x ** 2  # square",
] * 40


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return train_bpe(CORPUS, 400)


@given(st.text())
def test_byte_round_trip(text: str) -> None:
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 256 for i in ids)
    assert tok.eot_id not in ids


def test_byte_tokenizer_shape_and_eot_rendering() -> None:
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.eot_id) == (257, 256)
    assert tok.encode("é") == [0xC3, 0xA9]
    assert tok.decode([*tok.encode("ab"), 256, *tok.encode("c")]) == f"ab{EOT_TEXT}c"
    # A multi-byte character cut in half decodes to U+FFFD instead of raising.
    assert tok.decode([0xC3]) == "\ufffd"
    with pytest.raises(ValueError, match=r"outside 0\.\.256"):
        tok.decode([257])


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_bpe_round_trip(bpe: BPETokenizer, text: str) -> None:
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert all(0 <= i < bpe.learned_size for i in ids)


def test_bpe_merges_and_reserves_eot(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 400 and bpe.eot_id == 399
    text = "Return the number of items in a container."
    assert len(bpe.encode(text)) < len(text.encode("utf-8")) / 2
    # The literal marker is ordinary text: documents cannot forge a boundary.
    assert bpe.eot_id not in bpe.encode(f"a {EOT_TEXT} b")
    assert bpe.decode([*bpe.encode("x"), bpe.eot_id]) == f"x{EOT_TEXT}"


def test_bpe_save_load_gives_identical_ids(bpe: BPETokenizer, tmp_path: Path) -> None:
    bpe.save(tmp_path / "tok")
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {
        "tokenizer.json",
        "tokenizer_meta.json",
    }
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, BPETokenizer)
    assert (loaded.vocab_size, loaded.eot_id) == (bpe.vocab_size, bpe.eot_id)
    assert loaded.fingerprint == bpe.fingerprint
    for text in [*CORPUS[:5], "unseen words: zygomorphic xylophones", ""]:
        assert loaded.encode(text) == bpe.encode(text)


def test_bpe_training_is_deterministic(bpe: BPETokenizer) -> None:
    again = train_bpe(CORPUS, 400)
    assert again.fingerprint == bpe.fingerprint
    assert again.encode(CORPUS[3]) == bpe.encode(CORPUS[3])
    other = train_bpe(CORPUS, 300)
    assert other.fingerprint != bpe.fingerprint


def test_byte_save_load(tmp_path: Path) -> None:
    ByteTokenizer().save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, ByteTokenizer)
    assert loaded.encode("hi ☃") == ByteTokenizer().encode("hi ☃")


@pytest.mark.parametrize("size", [0, 256, 262_145, 10**7])
def test_bpe_vocab_size_out_of_range(size: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        train_bpe(CORPUS, size)


def test_bpe_vocab_size_must_be_int() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        train_bpe(CORPUS, True)  # type: ignore[arg-type]


def test_small_corpus_gives_the_learned_vocabulary() -> None:
    """Issue 13: no ids that no token reaches; end-of-text follows the learned ones."""
    tok = train_bpe(["aaaa bbbb"], 1000)
    assert tok.learned_size < 999
    assert tok.vocab_size == tok.learned_size + 1 and tok.eot_id == tok.learned_size
    assert tok.decode(tok.encode("ab ba")) == "ab ba"


def test_a_fixed_size_on_a_small_corpus_leaves_unused_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="traingate.train.tokenizer"):
        tok = train_bpe(["aaaa bbbb"], 1000, fixed_size=True)
    assert tok.vocab_size == 1000 and tok.eot_id == 999
    assert tok.learned_size < 999
    assert "learned" in caplog.text
    assert tok.decode([tok.learned_size]) == "\ufffd"
    assert tok.decode(tok.encode("ab ba")) == "ab ba"


def test_minimum_bpe_has_bytes_only() -> None:
    tok = train_bpe(CORPUS, 257)
    assert tok.learned_size == 256
    assert tok.decode(tok.encode(CORPUS[3])) == CORPUS[3]


def test_load_errors_name_the_problem(tmp_path: Path, bpe: BPETokenizer) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer_meta\.json is missing"):
        load_tokenizer(tmp_path / "nothing")
    bpe.save(tmp_path)
    meta_path = tmp_path / "tokenizer_meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "eot_id": 10}))
    with pytest.raises(ValueError, match="records vocab_size=400 eot_id=10"):
        load_tokenizer(tmp_path)
    meta_path.write_text(json.dumps({**meta, "vocab_size": 300, "eot_id": 299}))
    with pytest.raises(ValueError, match="no room for end-of-text"):
        load_tokenizer(tmp_path)
    meta_path.write_text(json.dumps({**meta, "kind": "wordpiece"}))
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'"):
        load_tokenizer(tmp_path)
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable tokenizers file"):
        load_tokenizer(tmp_path)
