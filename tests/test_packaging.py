"""The wheel carries the shipped contracts and their falsifiers, and no bare ``cli`` package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*cmd, "--quiet", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("traingate-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


@pytest.mark.slow
def test_wheel_contains_shipped_contracts_falsifiers_and_cli(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for required in [
        "traingate/_shipped/contracts/training-loop-pretrain-v1.yaml",
        "traingate/_shipped/falsifiers/test_training_loop.py",
        "traingate_cli/contracts_cmd.py",
        "traingate/contract/loading.py",
        "traingate/checks/non_divergence.py",
    ]:
        assert required in names, required
    shipped = wheel.read("traingate/_shipped/contracts/training-loop-pretrain-v1.yaml")
    assert shipped == (REPO / "contracts" / "training-loop-pretrain-v1.yaml").read_bytes()
    for path in sorted(REPO.glob("contracts/*.yaml")):
        assert f"traingate/_shipped/contracts/{path.name}" in names


@pytest.mark.slow
def test_wheel_has_no_bare_top_level_packages(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert not any(t in ("cli", "src", "tests", "contracts", "falsifiers") for t in tops)
    assert {t for t in tops if not t.endswith(".dist-info")} == {"traingate", "traingate_cli"}


@pytest.mark.slow
def test_wheel_declares_the_console_scripts(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "contracts = traingate_cli.contracts_cmd:main" in text
