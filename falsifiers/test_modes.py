"""Falsifiers for C-TRAIN-PRETRAIN's ``modes``: ``--mode`` applies its whole row, a flag wins.

The upstream failure: a mode switch that flipped the lr but kept the other mode's warm-up
and target, so a "from-scratch" run was judged by finetune numbers. Each property writes a
contract declaring generated rows and resolves a run against it with the trainer's own
:func:`~traingate.train.config.resolve`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from traingate.contract.shipped import shipped_contracts
from traingate.train.config import PretrainConfig, RunConfig, resolve

ROW_FIELDS = ("regime", "lr", "warmup", "target_val_loss")
FLAGS = {"lr": "lr", "warmup": "warmup", "target_val_loss": "target_val_loss"}
rows = st.fixed_dictionaries(
    {
        "regime": st.sampled_from(["from_scratch", "finetune"]),
        "lr": st.floats(min_value=1e-7, max_value=1.0),
        "warmup": st.integers(min_value=1, max_value=5000),
        "target_val_loss": st.floats(min_value=1e-3, max_value=20.0),
    }
)
explicit = st.fixed_dictionaries(
    {},
    optional={
        "lr": st.floats(min_value=1e-7, max_value=1.0),
        "warmup": st.integers(min_value=1, max_value=5000),
        "target_val_loss": st.floats(min_value=1e-3, max_value=20.0),
    },
)


@contextmanager
def contract_declaring(modes: Mapping[str, Mapping[str, Any]]) -> Iterator[Path]:
    """A valid contract file declaring ``modes`` (and nothing else to enforce)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "modes.yaml"
        doc = {
            "contract": "C-MODES-TEST",
            "version": "1.0.0",
            "title": "generated modes",
            "status": "active",
            "changelog": [
                {"version": "1.0.0", "date": dt.date(2026, 12, 4), "change": "generated"}
            ],
            "modes": {name: dict(row) for name, row in modes.items()},
        }
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        yield path


def resolved(contract: Path, mode: str, max_steps: int, **flags: Any) -> RunConfig:
    options = PretrainConfig(mode=mode, contracts=[contract], max_steps=max_steps, **flags)
    return resolve(options, data=contract, vocab_size=256)


def expected_warmup(row_warmup: int, max_steps: int) -> int:
    """A short run's warm-up is cut to a tenth of it (never below one step)."""
    return min(row_warmup, max(1, max_steps // 10))


@given(row=rows, max_steps=st.integers(min_value=1, max_value=100_000))
def test_mode_applies_its_whole_row(row: dict[str, Any], max_steps: int) -> None:
    with contract_declaring({"custom": row}) as contract:
        cfg = resolved(contract, "custom", max_steps)
    assert cfg.regime == row["regime"]
    assert cfg.lr == row["lr"]
    assert cfg.target_val_loss == row["target_val_loss"]
    assert cfg.warmup == expected_warmup(row["warmup"], max_steps)
    assert cfg.mode_source == "C-MODES-TEST@1.0.0"


@given(row=rows, flags=explicit, max_steps=st.integers(min_value=1, max_value=100_000))
def test_an_explicit_flag_wins_and_the_rest_come_from_the_row(
    row: dict[str, Any], flags: dict[str, Any], max_steps: int
) -> None:
    with contract_declaring({"custom": row}) as contract:
        cfg = resolved(contract, "custom", max_steps, **flags)
    defaults = {**row, "warmup": expected_warmup(row["warmup"], max_steps)}
    for name in FLAGS:
        assert getattr(cfg, name) == flags.get(name, defaults[name]), name
    assert cfg.regime == row["regime"]  # no flag sets the regime: the mode always does


@given(a=rows, b=rows)
def test_switching_modes_flips_every_field_together(a: dict[str, Any], b: dict[str, Any]) -> None:
    with contract_declaring({"first": a, "second": b}) as contract:
        got = {m: resolved(contract, m, 100_000) for m in ("first", "second")}
    for mode, row in (("first", a), ("second", b)):
        assert tuple(getattr(got[mode], f) for f in ROW_FIELDS) == tuple(row[f] for f in ROW_FIELDS)


def test_the_shipped_modes_are_c_train_pretrains_rows() -> None:
    pretrain = next(c for c in shipped_contracts() if c.contract == "C-TRAIN-PRETRAIN")
    assert set(pretrain.modes) == {"from-scratch", "finetune"}
    for name, row in pretrain.modes.items():
        cfg = resolve(PretrainConfig(mode=name, max_steps=100_000), data=Path("x"), vocab_size=256)
        assert (cfg.regime, cfg.lr, cfg.warmup, cfg.target_val_loss) == (
            row.regime,
            row.lr,
            row.warmup,
            row.target_val_loss,
        )
        assert cfg.mode_source == pretrain.ref
    scratch, tune = pretrain.modes["from-scratch"], pretrain.modes["finetune"]
    assert (scratch.regime, tune.regime) == ("from_scratch", "finetune")
    assert scratch.lr > tune.lr  # a finetune moves trained weights less
