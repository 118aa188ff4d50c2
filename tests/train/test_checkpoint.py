"""Checkpoints: round trip, truncation/corruption refused, newest-valid recovery, atomicity."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import IO

import pytest
import torch

from traingate.files import atomic_write
from traingate.train.checkpoint import (
    CheckpointError,
    latest_valid_checkpoint,
    list_step_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    save_step_checkpoint,
    step_checkpoint_path,
)
from traingate.train.model import build_model


def _payload(step: int = 1) -> dict:
    torch.manual_seed(step)
    model = build_model("tiny", 257, block_size=16)
    opt = model.configure_optimizer(lr=1e-3)
    _, loss = model(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    assert loss is not None
    loss.backward()
    opt.step()
    return {
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "data": {"cycle": 0, "file": 1, "doc": 2, "offset": 3, "source": "abc"},
        "preset": "tiny",
        "val_history": [5.5, 4.25],
    }


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def test_round_trip(tmp_path: Path) -> None:
    payload = _payload()
    save_checkpoint(tmp_path / "ck.pt", payload)
    _assert_same(payload, load_checkpoint(tmp_path / "ck.pt"))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is truncated"):
        load_checkpoint(path)
    path.write_bytes(data[:20])
    with pytest.raises(CheckpointError, match="shorter than its 48-byte header"):
        load_checkpoint(path)


def test_flipped_byte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _payload())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted: sha256"):
        load_checkpoint(path)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"a": torch.ones(3)}, path)  # a bare torch.save file, no header
    with pytest.raises(CheckpointError, match="bad magic"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "missing.pt")


class _Opaque:
    """An arbitrary class: torch.save pickles it, a weights_only load must refuse it."""


def test_arbitrary_objects_are_refused_by_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"thing": _Opaque()})
    with pytest.raises(CheckpointError, match="could not be unpickled"):
        load_checkpoint(path)
    assert isinstance(load_checkpoint(path, weights_only=False)["thing"], _Opaque)


def test_non_dict_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="holds a list, not a payload dict"):
        load_checkpoint(path)


def test_latest_valid_skips_a_corrupt_newest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for step in (100, 200, 300):
        save_step_checkpoint(tmp_path, step, {"step": step}, keep=5)
    newest = step_checkpoint_path(tmp_path, 300)
    newest.write_bytes(newest.read_bytes()[:-3])
    with caplog.at_level(logging.WARNING, logger="traingate.train.checkpoint"):
        found = latest_valid_checkpoint(tmp_path)
    assert found is not None
    path, payload = found
    assert path == step_checkpoint_path(tmp_path, 200) and payload == {"step": 200}
    assert "step-00000300.pt" in caplog.text


def test_latest_valid_is_none_without_a_valid_checkpoint(tmp_path: Path) -> None:
    assert latest_valid_checkpoint(tmp_path / "absent") is None
    assert latest_valid_checkpoint(tmp_path) is None
    step_checkpoint_path(tmp_path, 1).write_bytes(b"junk")
    assert latest_valid_checkpoint(tmp_path) is None


def test_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception, match=r"lambda|pickle"):
        save_checkpoint(path, {"step": 2, "fn": lambda: 0})
    assert load_checkpoint(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_atomic_write_interrupted_midway(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"

    def half_then_fail(fh: IO[bytes]) -> None:
        fh.write(b"partial bytes")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_prune_keeps_the_newest_and_removes_stale_temp_files(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20):
        save_step_checkpoint(tmp_path, step, {"step": step}, keep=10)
    stale = tmp_path / ".step-00000025.pt.abc123.tmp"
    stale.write_bytes(b"half")
    removed = prune_checkpoints(tmp_path, keep=2)
    assert {p.name for p in removed} == {"step-00000005.pt", "step-00000010.pt", stale.name}
    assert [s for s, _ in list_step_checkpoints(tmp_path)] == [20, 15]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_checkpoints(tmp_path, keep=0)


def test_save_step_checkpoint_prunes(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_step_checkpoint(tmp_path, step, {"step": step}, keep=3)
    assert [s for s, _ in list_step_checkpoints(tmp_path)] == [5, 4, 3]


def test_step_names_sort_numerically(tmp_path: Path) -> None:
    assert step_checkpoint_path(tmp_path, 42).name == "step-00000042.pt"
    for step in (9, 123_456_789, 10):
        save_checkpoint(step_checkpoint_path(tmp_path, step), {"step": step})
    (tmp_path / "step-12.pt").write_bytes(b"")  # not our pattern: ignored
    assert [s for s, _ in list_step_checkpoints(tmp_path)] == [123_456_789, 10, 9]
