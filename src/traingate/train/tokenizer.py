"""Tokenizers for the reference trainer: raw bytes, or a byte-level BPE trained on the corpus.

Both reserve one end-of-text id (``eot_id``, the last id) that ``encode`` never produces:
documents are joined with it by the data stream, so no text — not even the literal string
``<|endoftext|>`` — can forge a document boundary. ``save(dir)`` writes ``tokenizer_meta.json``
(plus ``tokenizer.json`` for BPE) and ``load_tokenizer(dir)`` restores identical ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

log = logging.getLogger(__name__)

META_FILE = "tokenizer_meta.json"
BPE_FILE = "tokenizer.json"
EOT_TEXT = "<|endoftext|>"
META_VERSION = 1
BYTE_VOCAB_SIZE = 257
MIN_BPE_VOCAB = 257
MAX_BPE_VOCAB = 262_144


class Tokenizer(ABC):
    """Text ↔ ids. ``vocab_size`` counts every id the model must embed, ``eot_id`` included."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids (the model's embedding rows); ids are ``0 .. vocab_size - 1``."""

    @property
    def eot_id(self) -> int:
        """The end-of-text id separating documents: always the last id."""
        return self.vocab_size - 1

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; never contains ``eot_id``. ``decode(encode(s)) == s``."""

    @abstractmethod
    def _decode_segment(self, ids: Sequence[int]) -> str:
        """Decode ids that contain no ``eot_id``."""

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; each ``eot_id`` is rendered as ``<|endoftext|>``."""
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside 0..{self.vocab_size - 1}")
        parts: list[str] = []
        segment: list[int] = []
        for i in ids:
            if i == self.eot_id:
                parts.append(self._decode_segment(segment))
                parts.append(EOT_TEXT)
                segment = []
            else:
                segment.append(i)
        parts.append(self._decode_segment(segment))
        return "".join(parts)

    @property
    def fingerprint(self) -> str:
        """Identifies the id mapping: equal fingerprints encode every text identically."""
        return f"{self.kind}-{self.vocab_size}"

    def save(self, directory: str | Path) -> None:
        """Write this tokenizer into ``directory`` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        meta = {
            "format_version": META_VERSION,
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "eot_id": self.eot_id,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @abstractmethod
    def _save_files(self, directory: Path) -> None:
        """Write kind-specific files next to the meta file."""


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as ids 0..255, plus end-of-text 256: 257 ids, nothing to train."""

    kind = "byte"

    @property
    def vocab_size(self) -> int:
        return BYTE_VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def _decode_segment(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def _save_files(self, directory: Path) -> None:
        """Nothing to write: the meta file says it all."""


class BPETokenizer(Tokenizer):
    """Byte-level BPE (``tokenizers``) whose learned ids are followed by one end-of-text id.

    ``vocab_size`` counts the ids; when it exceeds the learned tokens + 1 (a tokenizer trained
    with ``fixed_size``) the ids between the learned vocabulary and ``eot_id`` are unused
    (decoded as U+FFFD).
    """

    kind = "bpe"

    def __init__(self, tokenizer: HFTokenizer, vocab_size: int) -> None:
        _check_bpe_vocab_size(vocab_size)
        learned = tokenizer.get_vocab_size()
        if learned > vocab_size - 1:
            raise ValueError(
                f"the BPE model has {learned} tokens: no room for end-of-text in {vocab_size} ids"
            )
        self._tok = tokenizer
        self._vocab_size = vocab_size
        self._learned = learned

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def learned_size(self) -> int:
        """Ids the BPE model actually produces (``0 .. learned_size - 1``)."""
        return self._learned

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self._tok.to_str().encode("utf-8")).hexdigest()[:16]
        return f"{self.kind}-{self.vocab_size}-{digest}"

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def _decode_segment(self, ids: Sequence[int]) -> str:
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i < self._learned:
                run.append(i)
                continue
            parts.append(self._tok.decode(run))
            parts.append("\ufffd")
            run = []
        parts.append(self._tok.decode(run))
        return "".join(parts)

    def _save_files(self, directory: Path) -> None:
        self._tok.save(str(directory / BPE_FILE))


def _check_bpe_vocab_size(vocab_size: int) -> None:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise ValueError(f"BPE vocab_size must be an int, got {vocab_size!r}")
    if not MIN_BPE_VOCAB <= vocab_size <= MAX_BPE_VOCAB:
        raise ValueError(
            f"BPE vocab_size {vocab_size} is out of range: it must be between {MIN_BPE_VOCAB} "
            f"(256 byte tokens + end-of-text) and {MAX_BPE_VOCAB}"
        )


def train_bpe(texts: Iterable[str], vocab_size: int, *, fixed_size: bool = False) -> BPETokenizer:
    """Train a byte-level BPE of up to ``vocab_size`` ids (end-of-text included) on ``texts``.

    A corpus too small for that many merges gives a smaller vocabulary: the ids it learned
    and end-of-text, so a model sized to it has no rows that no token can reach. With
    ``fixed_size`` the vocabulary keeps ``vocab_size`` ids and the ones between the learned
    tokens and end-of-text are unused.
    """
    _check_bpe_vocab_size(vocab_size)
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    learned = tok.get_vocab_size()
    if learned >= vocab_size - 1:
        return BPETokenizer(tok, vocab_size)
    if not fixed_size:
        log.debug("BPE learned %d of %d requested tokens", learned, vocab_size - 1)
        return BPETokenizer(tok, learned + 1)
    log.warning(
        "BPE learned %d of %d requested tokens (corpus too small for more merges); "
        "ids %d..%d are unused",
        learned,
        vocab_size - 1,
        learned,
        vocab_size - 2,
    )
    return BPETokenizer(tok, vocab_size)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Restore a tokenizer written by ``Tokenizer.save(directory)``."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"no tokenizer in {directory}: {META_FILE} is missing")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{meta_path} is not readable tokenizer metadata: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != META_VERSION:
        raise ValueError(f"{meta_path}: unsupported tokenizer metadata (expected format 1)")
    kind = meta.get("kind")
    tok: Tokenizer
    if kind == "byte":
        tok = ByteTokenizer()
    elif kind == "bpe":
        bpe_path = directory / BPE_FILE
        if not bpe_path.is_file():
            raise FileNotFoundError(f"BPE tokenizer in {directory} is missing {BPE_FILE}")
        try:
            hf = HFTokenizer.from_file(str(bpe_path))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise ValueError(f"{bpe_path} is not a readable tokenizers file: {exc}") from exc
        tok = BPETokenizer(hf, meta.get("vocab_size"))  # type: ignore[arg-type]
    else:
        raise ValueError(f"{meta_path}: unknown tokenizer kind {kind!r} (expected byte or bpe)")
    if tok.vocab_size != meta.get("vocab_size") or tok.eot_id != meta.get("eot_id"):
        raise ValueError(
            f"{meta_path} records vocab_size={meta.get('vocab_size')} eot_id={meta.get('eot_id')}"
            f" but the tokenizer has vocab_size={tok.vocab_size} eot_id={tok.eot_id}"
        )
    return tok
