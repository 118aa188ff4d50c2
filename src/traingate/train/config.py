"""A pretraining run's settings: what was asked for, and what the run actually uses.

:class:`PretrainConfig` holds the options as given (``None``: "by mode" or "by preset"), the
way the CLI and the tests build them. :func:`resolve` turns them into a frozen
:class:`RunConfig` with every default filled in before the loop starts; the loop reads only
that, and ``config.json`` records it, so a run dir says what ran (block size, vocabulary,
intervals), never ``null``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from traingate.contract.modes import mode_row
from traingate.contract.presets import shipped
from traingate.contract.regime import RegimeName
from traingate.errors import TraingateError
from traingate.train.model import PRESETS

TokenizerKind = Literal["bytes", "bpe"]
_T = TypeVar("_T")


# The shipped presets a pretraining run enforces (liveness, calibration and confusion need a
# classifier's predictions: pass them with --contracts when a loop has them).
PRETRAIN_PRESETS = ("pretrain", "export")


class UsageError(TraingateError):
    """A bad combination of options or inputs (CLI exit 2)."""


@dataclass
class PretrainConfig:
    """The options of a run as given; regime, lr, warm-up and target come from the ``mode``
    row of the enforced contracts (an explicit lr/warmup/target wins)."""

    mode: str = "from-scratch"
    out: Path = Path("runs/pretrain")
    data: Path | None = None
    text_column: str = "text"
    max_steps: int = 400
    model: str = "tiny"
    tokenizer: TokenizerKind = "bytes"
    vocab_size: int | None = None
    pad_vocab: bool = False
    init_from: Path | None = None
    resume: bool = False
    allow_config_change: bool = False
    seed: int = 1337
    device: str = "cpu"
    contracts: list[Path] | None = None
    only: list[str] | None = None
    batch_size: int = 8
    block_size: int | None = None
    lr: float | None = None
    warmup: int | None = None
    target_val_loss: float | None = None
    eval_every: int | None = None
    eval_blocks: int = 16
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    val_percent: float = 5.0
    export_onnx: bool = True
    progress: bool | None = None
    reference: Path | None = None  # a reference run dir for reproducible invariants


@dataclass(frozen=True)
class RunConfig:
    """A run's settings with every default resolved: what the loop reads, what config.json says.

    ``data`` is the corpus actually read (the built-in one's cache path when none was given),
    ``vocab_size`` the tokenizer's, ``block_size`` the preset's unless overridden,
    ``contracts`` the files enforced and ``only`` the invariant ids (empty: all of them);
    ``regime`` and ``mode_source`` say which contract's ``mode`` row set the defaults.
    Where the weights start (fresh, resumed, ``--init-from``) is the setup's
    :class:`~traingate.train.setup.Start`, not a setting.
    """

    mode: str
    regime: RegimeName
    mode_source: str
    out: Path
    data: Path
    text_column: str
    max_steps: int
    model: str
    tokenizer: TokenizerKind
    vocab_size: int
    block_size: int
    resume: bool
    allow_config_change: bool
    seed: int
    device: str
    contracts: tuple[Path, ...]
    only: tuple[str, ...]
    batch_size: int
    lr: float
    warmup: int
    target_val_loss: float
    eval_every: int
    eval_blocks: int
    checkpoint_every: int
    keep_checkpoints: int
    val_percent: float
    export_onnx: bool
    progress: bool
    reference: Path | None

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values: paths as strings, tuples as lists."""
        return {
            key: str(value)
            if isinstance(value, Path)
            else [str(v) for v in value]
            if isinstance(value, tuple)
            else value
            for key, value in asdict(self).items()
        }


def resolve(options: PretrainConfig, *, data: Path, vocab_size: int) -> RunConfig:
    """Fill every default of ``options``; ``data`` and ``vocab_size`` come from the setup
    (the corpus it opened, the tokenizer it built or loaded). Warm-up is shortened to 10 %
    of a short run; validation runs four times a run and checkpoints go with it by default."""
    if options.model not in PRESETS:
        raise ValueError(
            f"unknown model preset {options.model!r}: expected one of {sorted(PRESETS)}"
        )
    eval_every = options.eval_every or max(1, options.max_steps // 4)
    contracts = enforced_contracts(options)
    mode = mode_row(contracts, options.mode)
    row = mode.row
    return RunConfig(
        mode=options.mode,
        regime=row.regime,
        mode_source=mode.source,
        out=options.out,
        data=data,
        text_column=options.text_column,
        max_steps=options.max_steps,
        model=options.model,
        tokenizer=options.tokenizer,
        vocab_size=vocab_size,
        block_size=_given(options.block_size, PRESETS[options.model].block_size),
        resume=options.resume,
        allow_config_change=options.allow_config_change,
        seed=options.seed,
        device=options.device,
        contracts=contracts,
        only=tuple(options.only or ()),
        batch_size=options.batch_size,
        lr=_given(options.lr, row.lr),
        warmup=_given(options.warmup, min(row.warmup, max(1, options.max_steps // 10))),
        target_val_loss=_given(options.target_val_loss, row.target_val_loss),
        eval_every=eval_every,
        eval_blocks=options.eval_blocks,
        checkpoint_every=options.checkpoint_every or eval_every,
        keep_checkpoints=options.keep_checkpoints,
        val_percent=options.val_percent,
        export_onnx=options.export_onnx,
        progress=_given(options.progress, sys.stderr.isatty()),
        reference=options.reference,
    )


def enforced_contracts(options: PretrainConfig) -> tuple[Path, ...]:
    """The contract files a run enforces: ``--contracts``, else the shipped presets (a run
    given a ``--reference`` enforces C-TRAIN-REPRODUCIBLE too)."""
    if options.contracts:
        return tuple(options.contracts)
    presets = PRETRAIN_PRESETS if options.export_onnx else PRETRAIN_PRESETS[:1]
    return tuple(shipped(*presets, *(["C-TRAIN-REPRODUCIBLE"] if options.reference else [])))


def _given(value: _T | None, default: _T) -> _T:
    """``value`` unless it was left out."""
    return default if value is None else value
