"""``--mode`` rows come from the enforced contracts: the shipped ones, a user's own, the
fallback when none declares a mode, and every way a row or a mode name can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli as contracts_cli
from traingate_cli.trainer_cmd import cli as trainer_cli

from traingate.contract.modes import mode_row
from traingate.contract.presets import shipped
from traingate.contract.shipped import ContractError
from traingate.train.config import PretrainConfig, resolve
from traingate.train.pretrain import pretrain

HEAD = """\
contract: C-{name}
version: 1.0.0
title: modes under test
status: active
changelog:
  - {{version: 1.0.0, date: 2026-12-04, change: first}}
"""
LONG = """\
modes:
  long-context:
    regime: finetune
    lr: 1.0e-5
    warmup: 7
    target_val_loss: 4.5
"""


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name.lower()}.yaml"
    path.write_text(HEAD.format(name=name) + body, encoding="utf-8")
    return path


def test_a_users_contract_declares_its_own_mode(tmp_path: Path) -> None:
    contract = write(tmp_path, "LONG", LONG)
    cfg = resolve(
        PretrainConfig(mode="long-context", contracts=[contract], max_steps=1000),
        data=contract,
        vocab_size=256,
    )
    assert (cfg.regime, cfg.lr, cfg.warmup, cfg.target_val_loss) == ("finetune", 1e-5, 7, 4.5)
    assert cfg.mode_source == "C-LONG@1.0.0"


def test_a_folder_of_contracts_is_read_as_the_guard_reads_it(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    write(tmp_path / "mine", "LONG", LONG)
    row = mode_row([tmp_path / "mine"], "long-context")
    assert (row.source, row.row.warmup) == ("C-LONG@1.0.0", 7)


def test_contracts_without_modes_fall_back_to_the_shipped_rows(tmp_path: Path) -> None:
    bare = write(tmp_path, "BARE", "")
    row = mode_row([bare], "finetune")
    assert row.source.startswith("C-TRAIN-PRETRAIN@")
    assert (row.row.regime, row.row.lr) == ("finetune", 5e-5)


def test_an_undeclared_mode_lists_the_declared_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ContractError, match=r"'long-context' is not declared: finetune, from-scratch"
    ):
        mode_row(shipped("pretrain"), "long-context")


def test_two_contracts_disagreeing_on_a_mode_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "ONE", LONG)
    two = write(tmp_path, "TWO", LONG.replace("warmup: 7", "warmup: 8"))
    with pytest.raises(ContractError, match=r"declared differently by C-ONE@1.0.0 and C-TWO@1.0.0"):
        mode_row([one, two], "long-context")
    assert mode_row([one, write(tmp_path, "SAME", LONG)], "long-context").row.warmup == 7


# each bad row: the line of LONG it replaces, what replaces it, the field the finding names
BAD_ROWS = {
    "lr zero": ("lr: 1.0e-5", "lr: 0.0", "lr"),
    "lr nan": ("lr: 1.0e-5", "lr: .nan", "lr"),
    "no warm-up": ("warmup: 7", "warmup: 0", "warmup"),
    "unknown regime": ("regime: finetune", "regime: scratch", "regime"),
    "unknown key": ("warmup: 7", "warmup: 7\n    batch: 8", "batch"),
}


@pytest.mark.parametrize("case", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_a_bad_row_is_a_located_finding(tmp_path: Path, case: tuple[str, str, str]) -> None:
    line, bad, field = case
    path = write(tmp_path, "BAD", LONG.replace(line, bad))
    result = CliRunner().invoke(contracts_cli, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"modes.long-context.{field}" in result.output
    assert "Traceback" not in result.output


def test_a_bad_mode_name_is_a_located_finding(tmp_path: Path) -> None:
    path = write(tmp_path, "NAME", LONG.replace("long-context:", "Long_Context:"))
    result = CliRunner().invoke(contracts_cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "modes.Long_Context" in result.output


def test_trainer_refuses_an_undeclared_mode_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        trainer_cli, ["pretrain", "--mode", "long-context", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2, result.output
    assert "mode 'long-context' is not declared: finetune, from-scratch" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_run_records_which_contract_set_its_mode(
    tmp_path: Path, corpus: dict[str, Path], one_thread: None
) -> None:
    out = tmp_path / "run"
    options = PretrainConfig(
        mode="finetune",
        out=out,
        data=corpus["txt"],
        max_steps=2,
        batch_size=2,
        block_size=32,
        eval_blocks=2,
        export_onnx=False,
        only=["INV-TRAIN-001"],
        progress=False,
    )
    pretrain(options)
    config = json.loads((out / "config.json").read_text())
    assert config["mode"] == "finetune"
    assert config["regime"] == {"kind": "finetune"}
    assert config["mode_source"].startswith("C-TRAIN-PRETRAIN@")
    assert config["lr"] == 5e-5
