"""What the multi-process adapter tests share: a free port and running a rank script."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_script(
    tmp_path: Path, name: str, source: str, *args: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Write ``source`` to ``tmp_path/name`` and run it there with ``args``, in a clean
    distributed environment (no inherited RANK/WORLD_SIZE/...), warnings silenced."""
    script = tmp_path / name
    script.write_text(source, encoding="utf-8")
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "PYTHONWARNINGS": "ignore"}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        encoding="utf-8",  # text, decoded the same way on every platform
        timeout=timeout,
        check=False,
    )
