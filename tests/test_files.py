"""traingate.files: an atomic write leaves a file with a plain file's mode (issue 13)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from traingate.files import atomic_write_text, current_umask


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask a test changes."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_an_atomic_write_follows_the_umask_like_open(
    tmp_path: Path, umask: None, mask: int
) -> None:
    os.umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "atomic.json", "{}\n")
    (tmp_path / "plain.json").write_text("{}\n")
    assert mode(tmp_path / "atomic.json") == mode(tmp_path / "plain.json") == 0o666 & ~mask


def test_replacing_a_file_gives_the_new_one_the_umask_mode(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    target = tmp_path / "verdict.json"
    target.write_text("old\n")
    target.chmod(0o600)
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["verdict.json"]  # no temp file left
