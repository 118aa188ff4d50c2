"""``contracts check`` re-derives the verdict from the hash-chained evidence: a hand-made,
edited or stale run dir fails, naming what is inconsistent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import check

from traingate import Guard
from traingate.ci.runcheck import check_run
from traingate.contract.regime import FromScratch
from traingate.runtime.evidence import chain_hash

from .conftest import NON_DIVERGENCE, VOCAB_SIZE, contract_yaml, expression, gate, invariant

CONTRACT_ID = "C-TEST-TRUST"


def contract_text(version: str) -> str:
    """A step finite-loss invariant and the epoch-0 cap, both ship-blocking, plus an
    advisory throughput expression."""
    return contract_yaml(
        CONTRACT_ID,
        version,
        "Trust test contract",
        [
            invariant("INV-TRU-001", "Finite", "finite", "step", {"observations": ["loss"]}),
            invariant("INV-TRU-005", "Cap", "non_divergence", "validation", NON_DIVERGENCE),
            expression("INV-TRU-006", "Speed", "step", "tokens_per_sec >= 0", "tokens_per_sec"),
        ],
        [
            gate("GATE-TRU-001", ["INV-TRU-001"]),
            gate("GATE-TRU-005", ["INV-TRU-005"]),
            gate("GATE-TRU-006", ["INV-TRU-006"], ship_blocking=False),
        ],
        parameters=VOCAB_SIZE,
    )


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "trust.yaml").write_text(contract_text("1.0.0"))
    return folder


@pytest.fixture
def run(contracts: Path, tmp_path: Path) -> Path:
    """A healthy closed run with a warned advisory invariant (throughput < 0 once)."""
    run_dir = tmp_path / "run"
    with Guard([contracts], regime=FromScratch(50257), run_dir=run_dir) as guard:
        for step in range(4):
            guard.step(step, loss=10.8 - 0.1 * step, tokens_per_sec=-1.0 if step == 2 else 9.0)
        guard.validation(0, val_loss=10.6)
    assert check_run(run_dir).exit_code == 0
    return run_dir


def edit_verdict(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = run_dir / "verdict.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rechain(lines: list[str]) -> list[str]:
    """Lines with their chain recomputed, as an adversary who knows the format would."""
    out, head = [], "0" * 64
    for line in lines:
        record = json.loads(line)
        record.pop("chain", None)
        body = json.dumps(record)
        head = chain_hash(head, body)
        out.append(f'{body[:-1]}, "chain": "{head}"}}')
    return out


def problems(run_dir: Path, *contract_paths: Path) -> str:
    result = check_run(run_dir, contract_paths)
    assert result.exit_code == 1
    return "\n".join(result.problems)


def all_invariants(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for record in data["invariants"].values():
            record[field] = value

    return change


def drop_ship_blocking(data: dict[str, Any]) -> None:
    data["invariants"]["INV-TRU-001"]["ship_blocking"] = False


def interrupted_but_ok(data: dict[str, Any]) -> None:
    data["interrupted"] = "SIGINT at step 2"


def hide_the_warning(data: dict[str, Any]) -> None:
    record = data["invariants"]["INV-TRU-006"]
    record["violations"], record["status"] = 0, "pass"
    data["gates"]["GATE-TRU-006"]["status"] = "pass"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (all_invariants("evaluations", 0), "INV-TRU-001 evaluations: verdict.json says 0"),
        (all_invariants("violations", 3), "INV-TRU-001 violations: verdict.json says 3"),
        (drop_ship_blocking, "INV-TRU-001 ship_blocking: verdict.json says False"),
        (interrupted_but_ok, "interrupted: verdict.json says 'SIGINT at step 2'"),
        (hide_the_warning, "INV-TRU-006 violations: verdict.json says 0, the evidence gives 1"),
    ],
    ids=["zero-evals", "pass-with-violations", "not-ship-blocking", "interrupted", "hidden-warn"],
)
def test_a_hand_edited_verdict_fails_naming_the_field(
    run: Path, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    edit_verdict(run, change)
    assert named in problems(run)


def test_every_check_of_the_cli_names_the_inconsistency(run: Path) -> None:
    edit_verdict(run, all_invariants("evaluations", 0))
    outcome = CliRunner().invoke(check, [str(run)])
    assert outcome.exit_code == 1
    expected = "FAIL: INV-TRU-001 evaluations: verdict.json says 0, the evidence gives 4"
    assert expected in outcome.output


def test_a_violation_event_the_verdict_does_not_count_fails(run: Path) -> None:
    log = run / "evidence.jsonl"
    lines = log.read_text().splitlines()
    forged = dict(json.loads(next(line for line in lines if '"warning"' in line)))
    forged.update(event="violation", invariant="INV-TRU-001", on_violation="abort")
    lines.insert(-1, json.dumps(forged))
    log.write_text("\n".join(rechain(lines)) + "\n")
    found = problems(run)
    assert "INV-TRU-001: the end event counts 0 violation(s), the evidence records 1" in found
    assert "does not end where verdict.json says" in found  # the head moved too


def test_an_end_event_that_says_not_ok_fails(run: Path) -> None:
    log = run / "evidence.jsonl"
    lines = log.read_text().splitlines()
    end = json.loads(lines[-1])
    end["ok"] = False
    lines[-1] = json.dumps(end)
    log.write_text("\n".join(rechain(lines)) + "\n")
    assert "the end event says ok: False, its tallies give True" in problems(run)


@pytest.mark.parametrize("tamper", ["edit", "drop", "swap"])
def test_an_edited_dropped_or_reordered_evidence_line_breaks_the_chain(
    run: Path, tamper: str
) -> None:
    log = run / "evidence.jsonl"
    lines = log.read_text().splitlines()
    warning = next(i for i, line in enumerate(lines) if '"warning"' in line)
    if tamper == "edit":
        lines[warning] = lines[warning].replace('"observed": -1.0', '"observed": 1.0')
        assert '"observed": 1.0' in lines[warning]
    elif tamper == "drop":
        del lines[warning]
    else:
        lines[warning - 1], lines[warning] = lines[warning], lines[warning - 1]
    log.write_text("\n".join(lines) + "\n")
    line = warning if tamper == "swap" else warning + 1
    assert f"evidence.jsonl:{line}: hash chain broken" in problems(run)


def test_appended_evidence_after_close_is_detected(run: Path) -> None:
    log = run / "evidence.jsonl"
    lines = log.read_text().splitlines()
    lines.append(lines[-1])
    log.write_text("\n".join(rechain(lines)) + "\n")
    assert "does not end where verdict.json says" in problems(run)


def test_missing_evidence_and_an_unchained_verdict_fail(run: Path) -> None:
    edit_verdict(run, lambda data: data.pop("evidence_head"))
    assert "verdict.json records no evidence hash" in problems(run)
    (run / "evidence.jsonl").unlink()
    assert "evidence.jsonl is missing: verdict.json cannot be verified" in problems(run)


def test_a_run_gated_by_an_older_contract_version_fails_naming_both(
    run: Path, tmp_path: Path
) -> None:
    newer = tmp_path / "repo" / "trust.yaml"
    newer.parent.mkdir()
    newer.write_text(contract_text("1.1.0"))
    found = problems(run, newer.parent)
    assert f"the run was gated by {CONTRACT_ID}@1.0.0; {newer} is {CONTRACT_ID}@1.1.0" in found


def test_a_contract_edited_without_a_version_bump_fails(
    run: Path, contracts: Path, tmp_path: Path
) -> None:
    assert check_run(run, [contracts]).exit_code == 0  # the very files it ran with
    edited = tmp_path / "edited" / "trust.yaml"
    edited.parent.mkdir()
    edited.write_text(contract_text("1.0.0").replace("tokens_per_sec >= 0", "tokens_per_sec >= 1"))
    assert "(same version) has" in problems(run, edited.parent)


def test_a_required_contract_the_run_never_used_fails(run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "other.yaml"
    other.parent.mkdir()
    other.write_text(contract_text("1.0.0").replace(CONTRACT_ID, "C-TEST-OTHER"))
    assert "the run was not gated by C-TEST-OTHER@1.0.0" in problems(run, other.parent)


def test_cli_contracts_option_and_default_discovery(
    run: Path, contracts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer = tmp_path / "repo" / "contracts" / "trust.yaml"
    newer.parent.mkdir(parents=True)
    newer.write_text(contract_text("1.1.0"))
    outcome = CliRunner().invoke(check, [str(run), "--contracts", str(contracts)])
    assert outcome.exit_code == 0, outcome.output
    monkeypatch.chdir(newer.parent.parent)  # ./contracts is found the way validate finds it
    outcome = CliRunner().invoke(check, [str(run)])
    assert outcome.exit_code == 1
    assert f"{CONTRACT_ID}@1.0.0" in outcome.output and f"{CONTRACT_ID}@1.1.0" in outcome.output
