"""How fast ``contracts validate`` is (issue 12): start-up and throughput.

(a) Start-up: ``contracts validate --strict`` on the shipped contracts against the floor any
    such tool pays, ``python -c "import pydantic, yaml, click"``; the two run interleaved as
    subprocesses (so drifting load hits both alike), medians of ``--repeats`` (≥ 7) runs,
    and their ratio (target ≤ 2×).
(b) Throughput: 1,000 contract files (copies of the shipped ones, each with its own ids) in
    a temporary folder, validated in-process (``validate_paths``, import cost excluded) and
    through the command line (``contracts validate --root REPO DIR``), seconds (target ≤ 1 s
    in-process).

Prints the machine, the YAML path (libyaml or pure Python) and the load average first, the
start-up ratio last::

    .venv/bin/python benchmarks/validate_speed.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "contracts"
FLOOR = [sys.executable, "-c", "import pydantic, yaml, click"]
VALIDATE = [sys.executable, "-m", "traingate_cli.contracts_cmd", "validate", "--strict"]
ID = re.compile(r"\b(C|INV|GATE|DEC)-([A-Z0-9]+)")


def timed(cmd: list[str], cwd: Path = REPO) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup(repeats: int) -> tuple[float, float]:
    """Medians of interleaved runs: (floor, validate)."""
    floor, validate = [], []
    timed(FLOOR), timed(VALIDATE)  # warm the page cache and the bytecode
    for _ in range(repeats):
        floor.append(timed(FLOOR))
        validate.append(timed(VALIDATE))
    return statistics.median(floor), statistics.median(validate)


def generate(folder: Path, count: int) -> None:
    """``count`` contract files: the shipped ones in turn, every id made distinct."""
    sources = sorted(CONTRACTS.glob("*.yaml"))
    texts = [p.read_text(encoding="utf-8") for p in sources]
    for i in range(count):
        text = ID.sub(lambda m, i=i: f"{m.group(1)}-{m.group(2)}N{i}", texts[i % len(texts)])
        (folder / f"contract-{i:04d}.yaml").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    repeats = max(7, args.repeats)

    import yaml

    from traingate.contract import loading
    from traingate.contract.validation import validate_paths

    c_path = loading.CLoader is not None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"python {platform.python_version()}, PyYAML {yaml.__version__}, libyaml: {c_path}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.files)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            report = validate_paths([folder], REPO)
            runs.append(time.perf_counter() - start)
        c = report.counts()
        assert c["contracts"] == args.files and not report.fatal, (c, report.fatal[:3])
        assert c["errors"] == 0, [f.text() for f in report.errors[:5]]
        print(
            f"{args.files} files in-process: {statistics.median(runs):.2f} s "
            f"(median of 3; {c['invariants']} invariants, {c['gates']} gates)"
        )
        cli = [timed([*VALIDATE[:-1], "--root", str(REPO), str(folder)]) for _ in range(3)]
        print(f"{args.files} files via the CLI: {statistics.median(cli):.2f} s (median of 3)")

    floor, validate = startup(repeats)
    print(f"python -c 'import pydantic, yaml, click': {floor * 1000:.0f} ms (median of {repeats})")
    print(f"contracts validate --strict (7 shipped): {validate * 1000:.0f} ms")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"start-up ratio validate / floor: {validate / floor:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
