"""How fast ``contracts validate`` is (issue 12): start-up and throughput.

(a) Start-up: ``contracts validate --strict`` on the shipped contracts (the console script,
    as a user runs it) against the floor any such tool pays,
    ``python -c "import pydantic, yaml, click"``, and against the floor of any tool that
    validates with a pydantic model (the same, plus ``from pydantic import BaseModel`` and
    one one-field model). All run interleaved as subprocesses (so drifting load hits them
    alike), medians of ``--repeats`` (≥ 7) runs; the ratio to the first floor is the target
    (≤ 2×). ``--baseline DIR`` adds the same command run from another checkout's ``src/``
    and ``cli/`` (e.g. ``git archive HEAD~3 src cli contracts falsifiers | tar -x -C DIR``),
    interleaved too, for before/after numbers under the same load.
(b) Where start-up goes: one in-process run with timers (interpreter start excluded):
    pydantic's ``BaseModel`` import, pydantic's plugin loader (``importlib.metadata``), the
    pydantic models built and their time, the rest of the imports, the validation itself.
(c) Throughput: 1,000 contract files (copies of the shipped ones, each with its own ids) in
    a temporary folder, validated in-process (``validate_paths``, import cost excluded) and
    through the command line (``contracts validate --root REPO DIR``), seconds (target ≤ 1 s
    in-process).

Every source file is byte-compiled first (an installed wheel has its ``.pyc`` files), so
``PYTHONDONTWRITEBYTECODE`` does not turn start-up into compiling. Prints the machine, the
YAML path (libyaml or pure Python) and the load average first, the start-up ratio last::

    .venv/bin/python benchmarks/validate_speed.py --repeats 9
"""

from __future__ import annotations

import argparse
import compileall
import json
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
ONE_MODEL = [
    sys.executable,
    "-c",
    "import pydantic, yaml, click\nfrom pydantic import BaseModel\nclass A(BaseModel):\n x: int",
]
SCRIPT = Path(sys.executable).with_name("contracts")  # the console script pip installs
ENTRY = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "traingate_cli.contracts_cmd"]
VALIDATE = [*ENTRY, "validate", "--strict"]
ID = re.compile(r"\b(C|INV|GATE|DEC)-([A-Z0-9]+)")

# (b): run as `python -c`, prints one JSON line of milliseconds
BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
import pydantic, yaml, click
t1 = time.perf_counter()
import pydantic.main
t2 = time.perf_counter()
import pydantic.plugin._loader as loader
t3 = time.perf_counter()
loader.get_plugins()
t4 = time.perf_counter()
from pydantic._internal import _model_construction as mc
built, stack, new, importing = [], [], mc.ModelMetaclass.__new__, [False]
def timed_new(mcs, name, bases, ns, **kw):
    start = time.perf_counter()
    stack.append(0.0)
    try:
        return new(mcs, name, bases, ns, **kw)
    finally:
        took = time.perf_counter() - start
        inner = stack.pop()
        if stack:
            stack[-1] += took
        built.append((took - inner, importing[0]))
mc.ModelMetaclass.__new__ = timed_new
complete = mc.complete_model_class
def timed_complete(*args, **kw):  # a deferred model built on first use (outside __new__)
    if stack:
        return complete(*args, **kw)
    start = time.perf_counter()
    try:
        return complete(*args, **kw)
    finally:
        built.append((time.perf_counter() - start, importing[0]))
mc.complete_model_class = timed_complete
import ast
parse, ast_parse = [0.0], ast.parse
def timed_parse(source, filename="<unknown>", *args, **kw):
    start = time.perf_counter()
    try:
        return ast_parse(source, filename, *args, **kw)
    finally:
        if str(filename).endswith(".py"):  # a test file (formulas parse as "<unknown>")
            parse[0] += time.perf_counter() - start
ast.parse = timed_parse
from traingate_cli import contracts_cmd
got, get = [0.0], contracts_cmd.LazyGroup.get_command
def timed_get(*args):
    start = time.perf_counter()
    importing[0] = True
    try:
        return get(*args)
    finally:
        importing[0] = False
        got[0] += time.perf_counter() - start
contracts_cmd.LazyGroup.get_command = timed_get
t5 = time.perf_counter()
try:
    contracts_cmd.main()
except SystemExit:
    pass
t6 = time.perf_counter()
ms = lambda s: round(s * 1000, 1)
print(json.dumps({
    "floor imports": ms(t1 - t0), "pydantic.main": ms(t2 - t1),
    "plugin loader import (importlib.metadata)": ms(t3 - t2), "plugin scan": ms(t4 - t3),
    "model classes and builds": len(built), "their time": ms(sum(t for t, _ in built)),
    "other imports": ms(got[0] - sum(t for t, i in built if i)),
    "validation": ms(t6 - t5 - got[0] - sum(t for t, i in built if not i)),
    "of it, test files parsed": ms(parse[0]),
}), file=sys.stderr)
"""


def timed(cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of ``cmd`` (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def baseline_run(folder: Path) -> tuple[list[str], Path, dict[str, str]]:
    """The validate command, run from ``folder``'s own ``src/`` and ``cli/`` (and contracts)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder / "src"), str(folder / "cli")]))
    return VALIDATE, folder, env


def startup(repeats: int, baseline: Path | None) -> dict[str, float]:
    """Medians of interleaved runs, seconds, by variant."""
    variants: dict[str, tuple[list[str], Path, dict[str, str] | None]] = {
        "floor": (FLOOR, REPO, None),
        "one model": (ONE_MODEL, REPO, None),
        "validate": (VALIDATE, REPO, None),
    }
    if baseline is not None:
        variants["baseline"] = baseline_run(baseline)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for cmd, cwd, env in variants.values():  # warm the page cache
        timed(cmd, cwd, env)
    for _ in range(repeats):
        for name, (cmd, cwd, env) in variants.items():
            samples[name].append(timed(cmd, cwd, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def breakdown() -> dict[str, float]:
    """One in-process ``contracts validate --strict`` with timers; milliseconds by part."""
    out = subprocess.run(
        [sys.executable, "-c", BREAKDOWN, "validate", "--strict"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:  # say why, rather than fail to read its last line as JSON
        raise SystemExit(f"the in-process breakdown run failed:\n{out.stderr}")
    return json.loads(out.stderr.strip().splitlines()[-1])


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
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout to time alongside"
    )
    args = parser.parse_args()
    repeats = max(7, args.repeats)
    for folder in (REPO / "src", REPO / "cli", *([args.baseline] if args.baseline else [])):
        compileall.compile_dir(folder, quiet=1)

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
        cli = [timed([*ENTRY, "validate", "--root", str(REPO), str(folder)]) for _ in range(3)]
        print(f"{args.files} files via the CLI: {statistics.median(cli):.2f} s (median of 3)")

    parts = breakdown()
    print("one start-up, in-process (ms): " + ", ".join(f"{k} {v:g}" for k, v in parts.items()))
    medians = startup(repeats, args.baseline)
    floor = medians["floor"]
    print(f"python -c 'import pydantic, yaml, click': {floor * 1000:.0f} ms (median of {repeats})")
    print(
        f"same + one pydantic model: {medians['one model'] * 1000:.0f} ms "
        f"({medians['one model'] / floor:.2f}x the floor)"
    )
    if "baseline" in medians:
        print(
            f"contracts validate --strict from {args.baseline}: "
            f"{medians['baseline'] * 1000:.0f} ms ({medians['baseline'] / floor:.2f}x)"
        )
    validate = medians["validate"]
    shipped = len(list(CONTRACTS.glob("*.yaml")))
    print(f"contracts validate --strict ({shipped} shipped): {validate * 1000:.0f} ms")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"start-up ratio validate / floor: {validate / floor:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
