"""Text sources, the hash split, token batches, cycling, exact resume, and every DataError."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from traingate.train.data import (
    DataError,
    TextSource,
    TokenStream,
    is_val_document,
    validation_set,
)
from traingate.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()


def _docs(n: int, stem: str = "document") -> list[str]:
    return [f"{stem} {i}: " + "lorem ipsum " * (i % 7 + 1) for i in range(n)]


def _parquet(path: Path, texts: list[str | None], column: str = "text", **extra: list) -> Path:
    pq.write_table(pa.table({column: texts, **extra}), path, row_group_size=7)
    return path


def _expected_stream(texts: list[str], split: str, val_percent: float) -> list[int]:
    """What one pass of the stream must be: encode(doc) + [eot] over the split's documents."""
    out: list[int] = []
    for text in texts:
        if text and is_val_document(text, val_percent) == (split == "val"):
            out += [*TOK.encode(text), TOK.eot_id]
    return out


def test_parquet_documents_skip_nulls_and_empties(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "a.parquet", ["one doc", None, "", "two doc"])
    assert list(TextSource(path).documents()) == [(0, 0, "one doc"), (0, 3, "two doc")]


def test_parquet_column_is_configurable(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "a.parquet", ["x", "y"], column="body", id=[1, 2])
    assert list(TextSource(path, column="body").texts()) == ["x", "y"]


def test_txt_documents_are_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("\n\nfirst line\nsecond line\n\n\n  \nnext para\n\nlast", encoding="utf-8")
    assert list(TextSource(path).texts()) == ["first line\nsecond line", "next para", "last"]


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    _parquet(tmp_path / "b" / "1.parquet", ["b1"])
    (tmp_path / "a.txt").write_text("a-txt", encoding="utf-8")
    _parquet(tmp_path / "c.parquet", ["c1", "c2"])
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    source = TextSource(tmp_path)
    assert [f.name for f in source.files] == ["a.txt", "1.parquet", "c.parquet"]
    assert list(source.texts()) == ["a-txt", "b1", "c1", "c2"]
    assert list(source.documents(start_file=2, start_doc=1)) == [(2, 1, "c2")]


def test_split_is_a_stable_hash_partition() -> None:
    # Golden values: sha256("hello")[:8] mod 10000 == 5342. Changing the hash changes every
    # run's val set, so it must be a deliberate, visible change.
    assert is_val_document("hello", 53.43)
    assert not is_val_document("hello", 53.42)
    texts = _docs(2000)
    val = [t for t in texts if is_val_document(t, 20)]
    assert 0.15 < len(val) / len(texts) < 0.25
    assert val == [t for t in texts if is_val_document(t, 20)]
    assert not any(is_val_document(t, 0) for t in texts)
    assert all(is_val_document(t, 100) for t in texts)
    with pytest.raises(ValueError, match="between 0 and 100"):
        is_val_document("x", 101)


def test_train_and_val_texts_partition_the_corpus(tmp_path: Path) -> None:
    texts = _docs(300)
    source = TextSource(_parquet(tmp_path / "a.parquet", texts))
    train = list(source.texts("train", 10))
    val = list(source.texts("val", 10))
    assert sorted(train + val) == sorted(texts)
    assert not set(train) & set(val)
    assert val


def test_batches_are_the_concatenated_token_stream(tmp_path: Path) -> None:
    texts = _docs(120)
    source = TextSource(_parquet(tmp_path / "a.parquet", texts))
    stream = TokenStream(source, TOK, batch_size=3, block_size=16, val_percent=10)
    expected = _expected_stream(texts, "train", 10)
    rows = []
    for _ in range(4):
        x, y = next(stream)
        assert x.shape == y.shape == (3, 16) and x.dtype == y.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])
        rows += [r.tolist() for r in torch.cat([x, y[:, -1:]], dim=1)]
    for i, row in enumerate(rows):
        assert row == expected[i * 16 : i * 16 + 17]


def test_stream_cycles_and_logs_one_line_per_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["short doc one", "short doc two", "short doc three"]
    source = TextSource(_parquet(tmp_path / "a.parquet", texts))
    stream = TokenStream(source, TOK, batch_size=2, block_size=8, val_percent=0)
    one_pass = _expected_stream(texts, "train", 0)
    with caplog.at_level(logging.INFO, logger="traingate.train.data"):
        batches = [next(stream) for _ in range(10)]  # 160 tokens: > 3 passes of 45
    lines = [r for r in caplog.records if "cycling" in r.getMessage()]
    assert len(lines) == (10 * 2 * 8 + 1) // len(one_pass)
    assert "pass 0 done (3 documents" in lines[0].getMessage()
    flat = [t for x, _ in batches for row in x.tolist() for t in row]
    assert flat == (one_pass * 4)[: len(flat)]


@pytest.mark.parametrize("k", [0, 1, 3, 7, 12, 25])
def test_resume_yields_exactly_the_following_batches(tmp_path: Path, k: int) -> None:
    (tmp_path / "data").mkdir()
    alpha, beta = _docs(8, "alpha"), _docs(4, "beta")
    _parquet(tmp_path / "data" / "a.parquet", alpha)
    (tmp_path / "data" / "b.txt").write_text("\n\n".join(beta), encoding="utf-8")
    source = TextSource(tmp_path / "data")
    per_pass = len(_expected_stream(alpha + beta, "train", 10))

    def stream() -> TokenStream:
        return TokenStream(source, TOK, batch_size=2, block_size=24, val_percent=10)

    uninterrupted = stream()
    reference = [next(uninterrupted) for _ in range(k + 8)]
    first = stream()
    for _ in range(k):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))  # plain, serialisable values
    assert state["cycle"] == k * 2 * 24 // per_pass  # k = 12 and 25 resume in later passes
    resumed = stream()
    resumed.load_state_dict(state)
    assert resumed.batches == k
    for x_ref, y_ref in reference[k:]:
        x, y = next(resumed)
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_resume_refuses_another_corpus_or_split(tmp_path: Path) -> None:
    a = TextSource(_parquet(tmp_path / "a.parquet", _docs(30)))
    b = TextSource(_parquet(tmp_path / "b.parquet", _docs(31)))
    stream = TokenStream(a, TOK, batch_size=2, block_size=8)
    next(stream)
    state = stream.state_dict()
    with pytest.raises(DataError, match="saved source"):
        TokenStream(b, TOK, batch_size=2, block_size=8).load_state_dict(state)
    with pytest.raises(DataError, match="saved val_percent"):
        TokenStream(a, TOK, batch_size=2, block_size=8, val_percent=50).load_state_dict(state)


def test_ranks_split_each_global_batch(tmp_path: Path) -> None:
    source = TextSource(_parquet(tmp_path / "a.parquet", _docs(60)))
    whole = TokenStream(source, TOK, batch_size=4, block_size=8)
    ranks = [TokenStream(source, TOK, 2, 8, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        x, _ = next(whole)
        parts = [next(s)[0] for s in ranks]
        assert torch.equal(torch.cat(parts), x)
    assert ranks[0].state_dict() == ranks[1].state_dict() == whole.state_dict()


def test_validation_set_is_the_first_val_blocks(tmp_path: Path) -> None:
    texts = _docs(400)
    source = TextSource(_parquet(tmp_path / "a.parquet", texts))
    x, y = validation_set(source, TOK, block_size=32, n_blocks=5, val_percent=10)
    assert x.shape == y.shape == (5, 32)
    expected = _expected_stream(texts, "val", 10)
    assert x.flatten().tolist() == expected[: 5 * 32]
    x2, _ = validation_set(source, TOK, block_size=32, n_blocks=5, val_percent=10)
    assert torch.equal(x, x2)


def test_short_val_split_gives_fewer_blocks_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = TextSource(_parquet(tmp_path / "a.parquet", _docs(40)))
    with caplog.at_level(logging.WARNING, logger="traingate.train.data"):
        x, _ = validation_set(source, TOK, block_size=64, n_blocks=10_000, val_percent=10)
    assert 0 < x.shape[0] < 10_000
    assert "holds only" in caplog.text


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'nope.parquet'} does not exist"):
        TextSource(tmp_path / "nope.parquet")


def test_empty_folder_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds no \.parquet or \.txt files"):
        TextSource(tmp_path)
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match=r"neither \.parquet nor \.txt"):
        TextSource(tmp_path / "x.csv")


@pytest.mark.parametrize("kind", ["parquet-no-rows", "parquet-empty-strings", "blank-txt"])
def test_empty_corpus(tmp_path: Path, kind: str) -> None:
    if kind == "parquet-no-rows":
        path = tmp_path / "a.parquet"
        pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    elif kind == "parquet-empty-strings":
        path = _parquet(tmp_path / "a.parquet", ["", None, ""])
    else:
        path = tmp_path / "a.txt"
        path.write_text("\n\n   \n", encoding="utf-8")
    stream = TokenStream(TextSource(path), TOK, batch_size=1, block_size=4)
    with pytest.raises(DataError, match=f"no text in {path}: empty corpus"):
        next(stream)
    with pytest.raises(DataError, match="empty corpus"):
        validation_set(TextSource(path), TOK, block_size=4, n_blocks=1)


def test_empty_split(tmp_path: Path) -> None:
    source = TextSource(_parquet(tmp_path / "a.parquet", _docs(10)))
    with pytest.raises(DataError, match=r"the train split .* is empty"):
        next(TokenStream(source, TOK, batch_size=1, block_size=4, val_percent=100))
    with pytest.raises(DataError, match=r"the val split .* is empty"):
        validation_set(source, TOK, block_size=4, n_blocks=1, val_percent=0)


def test_val_split_without_one_block(tmp_path: Path) -> None:
    source = TextSource(_parquet(tmp_path / "a.parquet", ["tiny"]))
    with pytest.raises(DataError, match="not one validation block"):
        validation_set(source, TOK, block_size=64, n_blocks=1, val_percent=100)


def test_missing_column_names_the_present_ones(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "a.parquet", ["x"], column="content", lang=["en"])
    with pytest.raises(DataError, match=r"no column 'text'; its columns are \['content', 'lang'\]"):
        TextSource(path)


def test_non_string_column(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    with pytest.raises(DataError, match="holds int64, not text strings"):
        TextSource(path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(DataError, match=f"{garbage} is corrupt or unreadable"):
        TextSource(garbage)
    good = _parquet(tmp_path / "good.parquet", _docs(50))
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{truncated} is corrupt or unreadable"):
        TextSource(truncated)


def test_corrupt_page_is_reported_while_streaming(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "a.parquet", _docs(50))
    data = bytearray(path.read_bytes())
    data[8:400] = b"\xff" * 392  # smash column pages, keep the footer readable
    path.write_bytes(bytes(data))
    source = TextSource(path)
    with pytest.raises(DataError, match="corrupt or unreadable"):
        list(source.texts())


def test_invalid_utf8_text_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"ok line\n\xff\xfe bad\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        list(TextSource(path).texts())
