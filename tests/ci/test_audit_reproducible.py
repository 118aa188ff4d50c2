"""``reproducible`` (INV-REPRO-001) in CI: ``contracts audit LOG --reference REF`` replays
a step log against a reference log or run dir, and ``contracts check RUN --reference REF``
re-decides the invariant from both run dirs' metrics."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from traingate_cli.run_cmds import audit, check

from traingate.contract.presets import shipped
from traingate.runtime.evidence import read_evidence
from traingate.runtime.guard import Guard
from traingate.runtime.planning import UnevaluableWarning
from traingate.runtime.verdict import load_verdict

REPRO = Path(__file__).resolve().parents[2] / "contracts" / "reproducibility-v1.yaml"
FINITE_TOO = {
    "contracts": [REPRO, *shipped("pretrain")],
    "only": ["INV-TRAIN-001", "INV-REPRO-001"],
}
MAPS = ["--map", "step", "--map", "loss", "--map", "grad_norm"]


def values(n: int, shift: float = 0.0) -> list[tuple[int, float, float]]:
    """``n`` step rows (step, loss, grad_norm); ``shift`` moves step 3's loss."""
    return [(i, 3.0 - i / 10 + (shift if i == 3 else 0.0), 1.0 + i / 100) for i in range(n)]


def step_log(path: Path, rows: list[tuple[int, float, float]]) -> Path:
    """A CSV step log of ``rows``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "grad_norm"])
        writer.writerows(rows)
    return path


def run_dir(
    path: Path, rows: list[tuple[int, float, float]], reference: Path | None = None
) -> Path:
    """A run dir a Guard of INV-REPRO-001 and INV-TRAIN-001 (finite loss) wrote over ``rows``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnevaluableWarning)  # a first run has no reference
        with Guard(**FINITE_TOO, run_dir=path, reference=reference) as guard:  # type: ignore[arg-type]
            for step, loss, norm in rows:
                guard.step(step, loss=loss, grad_norm=norm)
            guard.final()
    return path


def audited(tmp_path: Path, log: Path, *extra: str) -> Result:
    """``contracts audit LOG`` under C-TRAIN-REPRODUCIBLE into ``tmp_path/run``."""
    args = [str(log), "--contracts", str(REPRO), *MAPS, "--out", str(tmp_path / "run"), *extra]
    return CliRunner().invoke(audit, args)


def status(run: Path) -> str:
    return load_verdict(run).invariants["INV-REPRO-001"].status


def test_audit_of_an_equal_log_reproduces(tmp_path: Path) -> None:
    log = step_log(tmp_path / "b.csv", values(25))
    reference = step_log(tmp_path / "a.csv", values(25))
    result = audited(tmp_path, log, "--reference", str(reference))
    assert result.exit_code == 0, result.output
    assert status(tmp_path / "run") == "pass"
    audit_json = json.loads((tmp_path / "run" / "audit.json").read_text(encoding="utf-8"))
    assert audit_json["reference"]["path"] == str(reference)
    start = next(read_evidence(tmp_path / "run" / "evidence.jsonl"))
    assert start["reference"]["steps"] == 25


def test_audit_of_a_perturbed_log_fires(tmp_path: Path) -> None:
    log = step_log(tmp_path / "b.csv", values(25, shift=1e-5))
    reference = step_log(tmp_path / "a.csv", values(25))
    result = audited(tmp_path, log, "--reference", str(reference))
    assert result.exit_code == 0, result.output  # on_violation: warn, an advisory gate
    assert status(tmp_path / "run") == "warn"
    (warning,) = [
        e for e in read_evidence(tmp_path / "run" / "evidence.jsonl") if e["event"] == "warning"
    ]
    assert warning["detail"].startswith("step 3: loss")


def test_audit_against_a_run_dir(tmp_path: Path) -> None:
    reference = run_dir(tmp_path / "ref", values(20))
    log = step_log(tmp_path / "b.csv", values(20, shift=1.0))
    assert audited(tmp_path, log, "--reference", str(reference)).exit_code == 0
    assert status(tmp_path / "run") == "warn"


def test_audit_without_a_reference_leaves_it_unevaluated(tmp_path: Path) -> None:
    log = step_log(tmp_path / "b.csv", values(20))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevaluableWarning)  # a summary line, not a raw warning
        result = audited(tmp_path, log)
    assert "  warning: INV-REPRO-001 (reproducible) needs a reference run (--reference RUN" in (
        result.output
    )
    assert status(tmp_path / "run") == "not_evaluated"
    events = list(read_evidence(tmp_path / "run" / "evidence.jsonl"))
    assert any(e["event"] == "unevaluable" for e in events)


@pytest.mark.parametrize("name", ["missing.csv", "empty.csv"])
def test_audit_with_a_bad_reference_exits_2_naming_it(tmp_path: Path, name: str) -> None:
    log = step_log(tmp_path / "b.csv", values(20))
    if name == "empty.csv":
        step_log(tmp_path / name, [])
    result = audited(tmp_path, log, "--reference", str(tmp_path / name))
    assert result.exit_code == 2 and name in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_check_with_an_equal_reference_passes(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", values(20))
    b = run_dir(tmp_path / "b", values(20), reference=a)
    result = CliRunner().invoke(check, [str(b), "--reference", str(a)])
    assert result.exit_code == 0, result.output
    assert "INV-REPRO-001" in result.output and "re-decided" in result.output


def test_check_with_a_different_reference_fails(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", values(20))
    b = run_dir(tmp_path / "b", values(20, shift=1e-3))
    plain = CliRunner().invoke(check, [str(b)])
    assert plain.exit_code == 0, plain.output  # the run never saw a reference: not evaluated
    result = CliRunner().invoke(check, [str(b), "--reference", str(a), "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    (failure,) = report["failures"]
    assert failure.startswith("INV-REPRO-001: not reproduced against") and "step 3: loss" in failure


def test_check_notices_a_verdict_that_contradicts_its_metrics(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", values(20))
    b = run_dir(tmp_path / "b", values(20), reference=a)
    run_dir(tmp_path / "a2", values(20, shift=1.0))  # a itself changed after b was judged
    (a / "metrics.parquet").write_bytes((tmp_path / "a2" / "metrics.parquet").read_bytes())
    result = CliRunner().invoke(check, [str(b), "--reference", str(a), "--format", "json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert any("the run's verdict says pass" in p for p in problems), problems


def test_check_with_a_missing_reference_exits_2(tmp_path: Path) -> None:
    b = run_dir(tmp_path / "b", values(20))
    result = CliRunner().invoke(check, [str(b), "--reference", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope: no such reference run dir" in result.output
    assert "Traceback" not in result.output
