"""Garbled contracts never crash the validator: exit 0, 1 or 2 and never a traceback.

The shipped contract is mutated the way hands and merges break YAML (lines deleted,
duplicated, swapped, re-indented; stray ``:``, ``-``, ``{``, tabs, quotes and unicode;
truncation), then fed to ``contracts validate`` in-process and to ``validate_paths``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st
from traingate_cli.contracts_cmd import cli

from traingate.contract.loading import LoadError
from traingate.contract.validation import validate_paths

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "contracts" / "training-loop-pretrain-v1.yaml").read_text(encoding="utf-8")

NASTY = [":", "-", "- ", "{", "}", "[", "]", "\t", "'", '"', "#", "&a", "*a", "!!", "|", ">"]
NASTY += ["%", "@", "`", "? ", ": ", "\n", "\n  ", "é", "→", "·", "\u2028", "\ufeff", "\x00"]
NASTY += ["\x85", "0", "9", ".", "~", "null", "yes", "<<: ", "\\", "𝛑", "\ud800"]
insertions = st.one_of(
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map("".join),
    st.text(max_size=6),
)


@st.composite
def garbled(draw: st.DrawFn) -> str:
    """The shipped contract after 1–4 random edits."""
    text = SHIPPED
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        lines = text.splitlines(keepends=True) or [""]
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        pos = draw(st.integers(min_value=0, max_value=len(text)))
        edit = draw(
            st.sampled_from(
                ["delete", "duplicate", "swap", "insert", "cut", "truncate", "indent", "tab"]
            )
        )
        if edit == "delete":
            del lines[i]
        elif edit == "duplicate":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "indent":
            shift = draw(st.integers(min_value=-4, max_value=4))
            body = lines[i].lstrip(" ")
            lines[i] = " " * max(0, len(lines[i]) - len(body) + shift) + body
        elif edit == "tab":
            lines[i] = "\t" + lines[i].lstrip(" ")
        if edit in ("delete", "duplicate", "swap", "indent", "tab"):
            text = "".join(lines)
        elif edit == "insert":
            text = text[:pos] + draw(insertions) + text[pos:]
        elif edit == "cut":
            text = text[:pos] + text[pos + draw(st.integers(min_value=1, max_value=12)) :]
        else:
            text = text[:pos]
    return text


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "contract.yaml"


def _write(path: Path, text: str) -> None:
    # surrogatepass: lone surrogates become bytes that are not UTF-8, which must be caught too
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


def _edit(pattern: str, replacement: str) -> str:
    """The shipped text with the first match of ``pattern`` replaced (which must exist)."""
    edited, n = re.subn(pattern, replacement, SHIPPED, count=1, flags=re.MULTILINE)
    assert n == 1, pattern
    return edited


CONTROL_CHAR = _edit(r"^title: ", "title: \x93")
FEB_30 = _edit(r"date: \d{4}-\d\d-\d\d", "date: 2026-02-30")
HUGE_INT = (REPO / "tests/fixtures/broken/parameter_unused.yaml").read_text(encoding="utf-8")
HUGE_INT = HUGE_INT.replace("epoch_zero_cap: 10.0", "epoch_zero_cap: 1" + "0" * 400)
assert "0" * 400 in HUGE_INT


def check_cli(path: Path, text: str, fmt: str) -> int:
    """Run ``contracts validate`` in-process on ``text``; assert it ended like a CLI should."""
    _write(path, text)
    result = CliRunner().invoke(cli, ["validate", "--format", fmt, "--root", str(REPO), str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 1, 2)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith(f"contracts: {path}")
    elif fmt == "json":
        assert json.loads(result.stdout)["ok"] is (result.exit_code == 0)
    return result.exit_code


def check_api(path: Path, text: str) -> None:
    """``validate_paths`` may raise LoadError and nothing else; findings are well formed."""
    _write(path, text)
    try:
        report = validate_paths([path], root=REPO)
    except LoadError:
        return
    for finding in report.findings:
        assert finding.severity in ("error", "warning")
        assert finding.line >= 0 and finding.column >= 0


@settings(max_examples=150, deadline=None)
@example(text=CONTROL_CHAR, fmt="text")
@given(text=garbled(), fmt=st.sampled_from(["text", "json", "github"]))
def test_cli_survives_garbled_contracts(scratch: Path, text: str, fmt: str) -> None:
    check_cli(scratch, text, fmt)


@settings(max_examples=150, deadline=None)
@example(text=CONTROL_CHAR)
@given(text=garbled())
def test_api_raises_only_load_error(scratch: Path, text: str) -> None:
    check_api(scratch, text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (SHIPPED, 0),
        ("# a comment: {not: [yaml\n" + SHIPPED, 0),
        (_edit(r"^title: .*\n", ""), 1),
        (SHIPPED + "owner: nobody\n", 1),
        (_edit(r"^status: .*$", "status: ["), 2),
        (_edit(r"^status:", "\tstatus:"), 2),
        (SHIPPED + "\udcff", 2),
    ],
    ids=["shipped", "comment", "missing-title", "unknown-key", "bracket", "tab", "not-utf8"],
)
def test_the_harness_sees_every_exit_code(scratch: Path, text: str, code: int) -> None:
    """The checks above pass for well-handled input of each kind: they can pass and fail."""
    for fmt in ("text", "json", "github"):
        assert check_cli(scratch, text, fmt) == code
    check_api(scratch, text)


@pytest.mark.parametrize(
    "text",
    [
        CONTROL_CHAR,
        FEB_30,
        HUGE_INT,
    ],
    ids=["control-char", "feb-30", "huge-int"],
)
def test_former_crashers_are_reported_cleanly(scratch: Path, text: str) -> None:
    check_api(scratch, text)
    check_cli(scratch, text, "text")


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert bomb.stat().st_size < 600
    code = (  # exit 0 only if the bomb was refused (unreadable input or an error finding)
        "import sys; from pathlib import Path; from traingate.contract.loading import LoadError\n"
        "from traingate.contract.validation import validate_paths\n"
        "try:\n    r = validate_paths([Path(sys.argv[1])])\nexcept LoadError:\n    sys.exit(0)\n"
        "sys.exit(0 if r.fatal or r.errors else 3)\n"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(bomb)], env=env, capture_output=True, timeout=3
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating a 500-byte alias bomb did not finish in 3 s")
    assert proc.returncode == 0, proc.stderr
