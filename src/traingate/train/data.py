"""Streamed text sources, a deterministic train/val split, and resumable token batches.

A ``TextSource`` is a parquet shard (a string column, ``text`` by default), a ``.txt`` file
(one document per blank-line-separated paragraph; a lone file with no blank line between its
lines, one document per line) or a folder of either, read in sorted order
and never loaded whole. Each document belongs to the val split iff a sha256 bucket of its text
falls under ``val_percent`` — the same text always lands in the same split, on every machine.

``TokenStream`` concatenates ``encode(doc) + [eot]`` over the train split and yields
``(x, y)`` LongTensors of shape (batch, block), ``y`` being ``x`` shifted by one token. It
cycles forever, logging one line per completed pass (and telling ``on_cycle``'s callback:
the trainer records a ``data_cycled`` evidence event), and its position is a small dict
(``state_dict()``), so a resumed stream yields exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from traingate.errors import TraingateError
from traingate.train.tokenizer import Tokenizer

log = logging.getLogger(__name__)

Split = Literal["train", "val", "all"]
SUFFIXES = (".parquet", ".txt")
DEFAULT_VAL_PERCENT = 5.0
STATE_VERSION = 1


TXT_DOCUMENTS = (
    "a .txt document is a paragraph between blank lines, "
    "or a line of a lone --data file without blank lines"
)


class DataError(TraingateError):
    """The data cannot be used: missing, empty, unreadable, or without the text column."""


def is_val_document(text: str, val_percent: float) -> bool:
    """Whether ``text`` belongs to the val split: its sha256 bucket (of 10 000) is below
    ``val_percent`` percent. Stable across processes and machines (unlike ``hash()``)."""
    if not 0.0 <= val_percent <= 100.0:
        raise ValueError(f"val_percent must be between 0 and 100, got {val_percent}")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < round(val_percent * 100)


def in_split(text: str, split: Split, val_percent: float) -> bool:
    """Whether ``text`` is part of ``split`` (``all`` takes every document)."""
    if split == "all":
        return True
    return is_val_document(text, val_percent) == (split == "val")


class TextSource:
    """Documents from a parquet file, a ``.txt`` file, or a folder of those (recursive, sorted).

    Construction checks what can be checked cheaply: the path exists, a folder holds data files,
    and every parquet footer is readable and has the text column as strings.
    """

    def __init__(self, path: str | Path, column: str = "text", batch_rows: int = 1024) -> None:
        self.path = Path(path)
        self.column = column
        self.batch_rows = batch_rows
        if not self.path.exists():
            raise DataError(f"data path {self.path} does not exist")
        if self.path.is_dir():
            self.files = sorted(
                p for p in self.path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
            )
            if not self.files:
                raise DataError(
                    f"data folder {self.path} holds no .parquet or .txt files: empty corpus"
                )
        elif self.path.suffix in SUFFIXES:
            self.files = [self.path]
        else:
            raise DataError(
                f"data file {self.path} is neither .parquet nor .txt (got {self.path.suffix!r})"
            )
        for file in self.files:
            if file.suffix == ".parquet":
                self._check_parquet(file)
        # A lone .txt file that is one paragraph of several lines could never be split into
        # train and val: each of its lines is a document (in a folder, a file may be one).
        single = self.path.suffix == ".txt" and not self.path.is_dir()
        self.line_documents = [self.path] if single and _one_paragraph(self.path) else []
        if self.line_documents:
            log.info("%s has no blank line between its lines: each line is a document", self.path)

    def _check_parquet(self, file: Path) -> None:
        try:
            with pq.ParquetFile(file) as pf:
                schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"parquet file {file} is corrupt or unreadable: {exc}") from exc
        if self.column not in schema.names:
            raise DataError(
                f"parquet file {file} has no column {self.column!r}; "
                f"its columns are {schema.names} (choose one with the column option)"
            )
        kind = schema.field(self.column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(
                f"column {self.column!r} of parquet file {file} holds {kind}, not text strings"
            )

    @property
    def fingerprint(self) -> str:
        """Names, sizes and column of the files: changes when the corpus does."""
        base = self.path if self.path.is_dir() else self.path.parent
        listing = [(str(f.relative_to(base)), f.stat().st_size) for f in self.files]
        blob = json.dumps({"column": self.column, "files": listing}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def documents(self, start_file: int = 0, start_doc: int = 0) -> Iterator[tuple[int, int, str]]:
        """Yield ``(file_index, doc_index, text)`` for every non-empty document, starting at
        document ``start_doc`` of file ``start_file`` (indices count empty documents too)."""
        for file_index in range(start_file, len(self.files)):
            file = self.files[file_index]
            skip = start_doc if file_index == start_file else 0
            if file.suffix == ".parquet":
                docs = self._parquet_docs(file, skip)
            else:
                docs = _txt_docs(file, skip, by_line=file in self.line_documents)
            for doc_index, text in docs:
                yield file_index, doc_index, text

    def texts(
        self, split: Split = "all", val_percent: float = DEFAULT_VAL_PERCENT
    ) -> Iterator[str]:
        """The non-empty documents of ``split`` in order (e.g. to train a BPE on train only)."""
        for _, _, text in self.documents():
            if in_split(text, split, val_percent):
                yield text

    def _parquet_docs(self, file: Path, skip: int) -> Iterator[tuple[int, str]]:
        row = 0
        try:
            with pq.ParquetFile(file) as pf:
                for batch in pf.iter_batches(batch_size=self.batch_rows, columns=[self.column]):
                    if row + batch.num_rows <= skip:
                        row += batch.num_rows
                        continue
                    for value in batch.column(0).to_pylist():
                        if row >= skip and value:
                            yield row, value
                        row += 1
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"parquet file {file} is corrupt or unreadable: {exc}") from exc


def _txt_lines(file: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, as DataError when it is unreadable or not UTF-8."""
    try:
        with file.open(encoding="utf-8") as fh:
            yield from fh
    except UnicodeDecodeError as exc:
        raise DataError(f"text file {file} is not valid UTF-8: {exc}") from exc
    except OSError as exc:
        raise DataError(f"text file {file} is unreadable: {exc}") from exc


def _one_paragraph(file: Path) -> bool:
    """Whether the text file is a single paragraph of more than one line (read up to the
    start of its second paragraph, so a file of paragraphs costs a few lines)."""
    lines = 0
    gap = False
    for line in _txt_lines(file):
        if not line.strip():
            gap = lines > 0
        elif gap:
            return False
        else:
            lines += 1
    return lines > 1


def _txt_docs(file: Path, skip: int, by_line: bool = False) -> Iterator[tuple[int, str]]:
    """``(index, text)`` of a text file's documents from index ``skip`` on: its blank-line
    separated paragraphs, or (``by_line``) its non-blank lines."""
    index = 0
    lines: list[str] = []
    for line in _txt_lines(file):
        if line.strip():
            if not by_line:
                lines.append(line)
                continue
            lines = [line]
        if lines:
            if index >= skip:
                yield index, "".join(lines).rstrip("\n")
            index += 1
            lines = []
    if lines and index >= skip:
        yield index, "".join(lines).rstrip("\n")


@dataclass(frozen=True)
class _DocRef:
    cycle: int
    file: int
    doc: int


class _RowReader:
    """Rows of ``block + 1`` consecutive tokens, advancing ``block`` tokens per row.

    The position is the first token of the next row: token ``offset`` of the first document of
    the split at or after (``file``, ``doc``) in pass ``cycle``.
    """

    def __init__(
        self,
        source: TextSource,
        tokenizer: Tokenizer,
        block_size: int,
        split: Split,
        val_percent: float,
        cycle: bool,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        in_split("", split, val_percent)  # validates val_percent early
        self.source = source
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.split = split
        self.val_percent = val_percent
        self.cycle = cycle
        self.on_cycle: Callable[..., None] | None = None  # told of each new pass (TokenStream)
        self.seek(_DocRef(0, 0, 0), 0)

    def seek(self, start: _DocRef, offset: int) -> None:
        """Continue from token ``offset`` of the first split document at or after ``start``."""
        self._start = start
        self._segments: deque[tuple[_DocRef, list[int]]] = deque()
        self._head = 0
        self._available = 0
        self._docs = self._iter_docs(start)
        if offset:
            if not self._pull():
                raise DataError(f"resume position is past the end of {self.source.path}")
            ref, tokens = self._segments[0]
            if ref != start or offset >= len(tokens):
                raise DataError(
                    f"resume position (pass {start.cycle}, file {start.file}, doc {start.doc}, "
                    f"token {offset}) does not match the documents of {self.source.path}: "
                    "the corpus or tokenizer changed since the state was saved"
                )
            self._head = offset
            self._available -= offset

    def position(self) -> tuple[_DocRef, int]:
        """The current position (see the class docstring)."""
        if self._segments:
            return self._segments[0][0], self._head
        return self._start, 0

    def _iter_docs(self, start: _DocRef) -> Iterator[tuple[_DocRef, list[int]]]:
        cycle, file, doc = start.cycle, start.file, start.doc
        eot = self.tokenizer.eot_id
        while True:
            seen = matched = tokens_in_pass = 0
            for f, d, text in self.source.documents(file, doc):
                seen += 1
                if in_split(text, self.split, self.val_percent):
                    matched += 1
                    tokens = self.tokenizer.encode(text)
                    tokens.append(eot)
                    tokens_in_pass += len(tokens)
                    yield _DocRef(cycle, f, d), tokens
            whole_pass = file == 0 and doc == 0
            if whole_pass and seen == 0:
                raise DataError(f"no text in {self.source.path}: empty corpus")
            if whole_pass and matched == 0:
                raise DataError(
                    f"the {self.split} split of {self.source.path} is empty: none of its {seen} "
                    f"documents falls in it at val_percent={self.val_percent} "
                    f"({TXT_DOCUMENTS}; a parquet document is a row)"
                )
            if not self.cycle:
                return
            log.info(
                "%s split of %s: pass %d done (%d documents, %d tokens read in this pass); "
                "cycling to pass %d",
                self.split,
                self.source.path,
                cycle,
                matched,
                tokens_in_pass,
                cycle + 1,
            )
            if self.on_cycle is not None:
                self.on_cycle(
                    pass_index=cycle + 1, documents_in_pass=matched, tokens_in_pass=tokens_in_pass
                )
            cycle, file, doc = cycle + 1, 0, 0

    def _pull(self) -> bool:
        item = next(self._docs, None)
        if item is None:
            return False
        self._segments.append(item)
        self._available += len(item[1])
        return True

    def next_row(self) -> list[int] | None:
        """The next ``block + 1`` tokens, or None when a non-cycling reader runs out."""
        need = self.block_size + 1
        while self._available < need:
            if not self._pull():
                return None
        row: list[int] = []
        start = self._head
        for _, tokens in self._segments:
            row.extend(tokens[start : start + need - len(row)])
            start = 0
            if len(row) == need:
                break
        advance = self.block_size
        while advance:
            remaining = len(self._segments[0][1]) - self._head
            if remaining > advance:
                self._head += advance
                advance = 0
            else:
                advance -= remaining
                self._segments.popleft()
                self._head = 0
        self._available -= self.block_size
        return row


class TokenStream:
    """Endless ``(x, y)`` training batches of shape (batch_size, block_size), resumable exactly.

    Under data parallelism every rank reads the same rows and keeps its own contiguous
    ``batch_size`` of each ``batch_size * world_size`` rows, so all ranks hold the same state.
    """

    def __init__(
        self,
        source: TextSource,
        tokenizer: Tokenizer,
        batch_size: int,
        block_size: int,
        *,
        split: Split = "train",
        val_percent: float = DEFAULT_VAL_PERCENT,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.batch_size = batch_size
        self.block_size = block_size
        self.rank = rank
        self.world_size = world_size
        self.batches = 0
        self._rows = _RowReader(source, tokenizer, block_size, split, val_percent, cycle=True)

    def on_cycle(self, callback: Callable[..., None]) -> None:
        """Call ``callback(batch=, pass_index=, documents_in_pass=, tokens_in_pass=)`` each
        time the stream wraps to a new pass (besides its one log line), so a loop can
        record it: ``batch`` is the batch being built, ``pass_index`` the new pass (1 at
        the first wrap), the counts those read in the pass just completed."""
        self._rows.on_cycle = lambda **fields: callback(batch=self.batches, **fields)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self._rows.next_row() for _ in range(self.batch_size * self.world_size)]
        mine = rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        self.batches += 1
        return _to_xy(mine)  # type: ignore[arg-type]  # a cycling reader never returns None

    def state_dict(self) -> dict[str, Any]:
        """The position as plain ints and strings (fits in a weights_only checkpoint)."""
        ref, offset = self._rows.position()
        return {
            "version": STATE_VERSION,
            "source": self._rows.source.fingerprint,
            "tokenizer": self._rows.tokenizer.fingerprint,
            "split": self._rows.split,
            "val_percent": self._rows.val_percent,
            "cycle": ref.cycle,
            "file": ref.file,
            "doc": ref.doc,
            "offset": offset,
            "batches": self.batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()`` taken on the same corpus, tokenizer and split
        (batch size, block size and world size may differ: the position is in tokens)."""
        if state.get("version") != STATE_VERSION:
            raise DataError(f"unsupported data stream state version {state.get('version')!r}")
        expected = {
            "source": self._rows.source.fingerprint,
            "tokenizer": self._rows.tokenizer.fingerprint,
            "split": self._rows.split,
            "val_percent": self._rows.val_percent,
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise DataError(
                    f"cannot resume the data stream over {self._rows.source.path}: saved {key} "
                    f"{state.get(key)!r} differs from the current {value!r}"
                )
        ref = _DocRef(int(state["cycle"]), int(state["file"]), int(state["doc"]))
        self._rows.seek(ref, int(state["offset"]))
        self.batches = int(state["batches"])


def _to_xy(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.tensor(rows, dtype=torch.long)
    return data[:, :-1].contiguous(), data[:, 1:].contiguous()


def validation_set(
    source: TextSource,
    tokenizer: Tokenizer,
    block_size: int,
    n_blocks: int,
    val_percent: float = DEFAULT_VAL_PERCENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_blocks`` blocks of the val split as ``(x, y)`` of shape (n, block_size):
    the same tensors on every call and every rank. Fewer blocks (with a warning) if the split is
    short; a DataError if it holds no complete block."""
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    reader = _RowReader(source, tokenizer, block_size, "val", val_percent, cycle=False)
    rows: list[list[int]] = []
    while len(rows) < n_blocks:
        row = reader.next_row()
        if row is None:
            break
        rows.append(row)
    if not rows:
        raise DataError(
            f"the val split of {source.path} holds fewer than {block_size + 1} tokens: "
            "not one validation block (raise --val-percent or add data; "
            f"{TXT_DOCUMENTS})"
        )
    if len(rows) < n_blocks:
        log.warning(
            "val split of %s holds only %d of the %d requested blocks of %d tokens",
            source.path,
            len(rows),
            n_blocks,
            block_size,
        )
    return _to_xy(rows)
