"""One small contract whose invariant's params (by default a cap and a ratio limit) and
date a test fills in, and where they land.

The contract tests that point at a threshold's line and column share it, so a column
asserted in one file means the same character in another.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAP_LINE = 15  # the line of `epoch_zero_cap:` in CONTRACT
CAP_COLUMN = 23  # the column at which its value starts
FIELD = "invariants[0].params.epoch_zero_cap"

CONTRACT = """\
contract: C-FIX-CAP
version: 1.0.0
title: A cap to fill in
status: draft
changelog:
  - {{version: 1.0.0, date: {date}, change: first}}
parameters:
  vocab_size: {{type: int, min: 2}}
invariants:
  - id: INV-FIX-CAP-001
    title: The invariant under test
    check: {check}
    at: {at}
    params:
{params}
    on_violation: abort
    falsified_by:
      - falsifiers/test_training_loop.py::test_non_finite_always_aborts
gates:
  - id: GATE-FIX-CAP-001
    requires: [INV-FIX-CAP-001]
    ship_blocking: true
"""


CAP_PARAMS = "      epoch_zero_cap: {cap}\n      ratio_limit: {ratio}"


def write(
    tmp_path: Path,
    cap: str,
    *,
    ratio: str = "2.0",
    date: str = "2026-01-01",
    name: str = "contract.yaml",
) -> Path:
    """A non-divergence contract whose only variable parts are the cap, ratio limit and date."""
    params = CAP_PARAMS.format(cap=cap, ratio=ratio)
    return write_invariant(tmp_path, "non_divergence", "validation", params, date=date, name=name)


def write_invariant(
    tmp_path: Path,
    check: str,
    at: str,
    params: str,
    *,
    date: str = "2026-01-01",
    name: str = "contract.yaml",
) -> Path:
    """The contract with one ``check`` invariant at ``at`` whose params block is ``params``
    (YAML lines indented six spaces); its first param is on :data:`CAP_LINE`."""
    path = tmp_path / name
    text = CONTRACT.format(check=check, at=at, params=params, date=date)
    path.write_text(text, encoding="utf-8")
    return path


def text_from(path: Path, line: int, column: int) -> str:
    """The text of ``path`` from 1-based ``line`` and ``column`` to the end of that line."""
    return path.read_text(encoding="utf-8").splitlines()[line - 1][column - 1 :]
