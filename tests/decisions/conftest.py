"""Shared by the decision tests: the shipped rule, the seed runs, sidecar and rule builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traingate.contract.loading import load_contract
from traingate.decisions import DecisionRule

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "mlm-decisive-round-v1.yaml"
RUNS = ROOT / "tests" / "fixtures" / "runs"
SEED_A, SEED_B = RUNS / "mlm_a", RUNS / "mlm_b"


def shipped_rule() -> DecisionRule:
    loaded = load_contract(CONTRACT)
    assert loaded.findings == [] and loaded.contract is not None
    (rule,) = loaded.contract.decisions
    return rule


RULE = shipped_rule()


def write_sidecar(path: Path, content: object) -> Path:
    """Write ``content`` to ``path`` (a str as it is, anything else as JSON), folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def write_run(
    run: Path,
    resolver: tuple[int, int],
    harness: tuple[int, int],
    calibration: str,
) -> Path:
    """Sidecars in the layout DEC-MLM-001 reads (calibration as JSON number text)."""
    resolved = {"acc_at_1": {"correct": resolver[0], "total": resolver[1]}}
    write_sidecar(run / "eval" / "resolver.json", resolved)
    write_sidecar(run / "eval" / "harness.json", {"passed": harness[0], "total": harness[1]})
    write_sidecar(run / "eval" / "calibration.json", f'{{"wrong_confidence_p90": {calibration}}}')
    return run


def minimal_rule(**overrides: Any) -> dict[str, Any]:
    """A small valid rule as plain data (one rate metric with a tie test, one branch)."""
    rule: dict[str, Any] = {
        "id": "DEC-TEST-001",
        "title": "test rule",
        "metrics": {
            "acc": {
                "kind": "rate",
                "higher_is_better": True,
                "successes": {"file": "eval.json", "field": "ok"},
                "trials": {"file": "eval.json", "field": "n"},
            }
        },
        "deltas": {"gap": "acc"},
        "tie": {"metric": "acc"},
        "branches": [{"when": "gap >= 1", "verdict": "UP"}, {"otherwise": True, "verdict": "NO"}],
    }
    rule.update(overrides)
    return rule


# A contract holding one rule whose first branch is `{when}` (str.format it).
YAML_RULE = """\
contract: C-TEST
version: 1.0.0
title: t
status: draft
changelog: [{{version: 1.0.0, date: 2026-01-01, change: x}}]
decisions:
  - id: DEC-TEST-001
    title: t
    metrics:
      acc:
        kind: rate
        higher_is_better: true
        successes: {{file: eval.json, field: ok}}
        trials: {{file: eval.json, field: n}}
    deltas: {{gap: acc}}
    tie: {{metric: acc}}
    branches:
      - {{when: "{when}", verdict: UP}}
      - {{otherwise: true, verdict: KEEP}}
"""
