"""What a run says before its first step: the model's size, the device, the tokenizer and
the corpus (documents and tokens of each split), so a user sees what is being trained.

Counting the corpus is one pass over its documents (a sha256 per document for its split, an
encode for its tokens); past :data:`COUNT_BUDGET_CHARS` characters of text it stops, and the
line says the numbers are a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from traingate.train.config import RunConfig
from traingate.train.data import TextSource, is_val_document
from traingate.train.model import GPT
from traingate.train.tokenizer import BPETokenizer, Tokenizer

COUNT_BUDGET_CHARS = 64_000_000


@dataclass(frozen=True)
class CorpusCounts:
    """Documents and tokens (end-of-text included) of each split; ``complete`` is False when
    counting stopped at the budget (then every number is a lower bound)."""

    train_docs: int
    train_tokens: int
    val_docs: int
    val_tokens: int
    complete: bool

    @property
    def docs(self) -> int:
        return self.train_docs + self.val_docs

    @property
    def tokens(self) -> int:
        return self.train_tokens + self.val_tokens


def count_corpus(
    source: TextSource,
    tokenizer: Tokenizer,
    val_percent: float,
    budget_chars: int = COUNT_BUDGET_CHARS,
) -> CorpusCounts:
    """Count the documents and tokens of each split of ``source`` (up to ``budget_chars``)."""
    counts = {"train": [0, 0], "val": [0, 0]}
    read = 0
    for _, _, text in source.documents():
        if read >= budget_chars:
            return CorpusCounts(*counts["train"], *counts["val"], complete=False)
        read += len(text)
        split = counts["val" if is_val_document(text, val_percent) else "train"]
        split[0] += 1
        split[1] += len(tokenizer.encode(text)) + 1
    return CorpusCounts(*counts["train"], *counts["val"], complete=True)


def tokenizer_line(tokenizer: Tokenizer, asked: int | None) -> str:
    """``tokenizer: bpe, vocab 7519 (asked 262144, learned 7519)`` or ``bytes, vocab 257``."""
    kind = "bytes" if tokenizer.kind == "byte" else tokenizer.kind  # as --tokenizer spells it
    line = f"tokenizer: {kind}, vocab {tokenizer.vocab_size:,}"
    if isinstance(tokenizer, BPETokenizer) and asked is not None and asked != tokenizer.vocab_size:
        line += f" (asked {asked:,}; the corpus supports no more merges)"
    return line


def corpus_line(source: TextSource, counts: CorpusCounts, val_percent: float) -> str:
    """``corpus: PATH: 7,036 documents, 1.61M tokens; train 6,690 / 1.53M, val 346 / 82.1k``."""
    at_least = "" if counts.complete else "at least "
    line = (
        f"corpus: {source.path}: {at_least}{counts.docs:,} documents, "
        f"{human(counts.tokens)} tokens; train {counts.train_docs:,} documents / "
        f"{human(counts.train_tokens)} tokens, val {counts.val_docs:,} / "
        f"{human(counts.val_tokens)} (val_percent {val_percent:g})"
    )
    if not counts.complete:
        line += f"; counted the first {COUNT_BUDGET_CHARS // 1_000_000}M characters"
    if source.line_documents:
        line += "; one document a line (the file has no blank line)"
    return line


def run_header(
    cfg: RunConfig,
    model: GPT,
    tokenizer: Tokenizer,
    source: TextSource,
    world: int,
    asked_vocab: int | None,
) -> list[str]:
    """The lines a run logs before its first step (model, device, tokenizer, corpus)."""
    shape = model.config
    params = sum(p.numel() for p in model.parameters())
    counts = count_corpus(source, tokenizer, cfg.val_percent)
    processes = f", {world} processes" if world > 1 else ""
    return [
        f"model: {cfg.model}, {shape.n_layer} layers × {shape.n_embd} wide "
        f"({shape.n_head} heads), context {shape.block_size}, {human(params)} parameters",
        f"device: {cfg.device}{processes}",
        tokenizer_line(tokenizer, asked_vocab),
        corpus_line(source, counts, cfg.val_percent),
    ]


def human(n: int) -> str:
    """``1234`` → ``1,234``; ``1_612_345`` → ``1.61M``; ``82_100`` → ``82.1k``."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.3g}G"
    if n >= 1_000_000:
        return f"{n / 1e6:.3g}M"
    if n >= 100_000:
        return f"{n / 1e3:.3g}k"
    return f"{n:,}"
