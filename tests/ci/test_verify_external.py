"""``contracts verify`` and a gate's ``external_evidence``: reported as ``external``, never run,
never discharged (a gate citing one is at best ``missing``), in text and in JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli

from traingate.ci.verify import verify
from traingate.contract.loading import load_contract

from .conftest import contract_yaml, gate, invariant
from .test_verify_collection import PYTHONPATH

EXTERNAL = "crates/aprender/tests/conv.rs::converges"
GOOD = "def test_holds():\n    assert 1 + 1 == 2\n"


def project(root: Path) -> Path:
    """One invariant with a passing falsifier; GATE-EXT-001 also cites external evidence."""
    (root / "falsifiers").mkdir()
    (root / "falsifiers" / "test_good.py").write_text(GOOD)
    inv = invariant(
        "INV-EXT-001", "Holds", "non_divergence", "validation", {"epoch_zero_cap": 10.0}
    )
    inv["falsified_by"] = ["falsifiers/test_good.py::test_holds"]
    external = gate("GATE-EXT-001", ["INV-EXT-001"])
    external["external_evidence"] = [EXTERNAL]
    plain = gate("GATE-EXT-002", ["INV-EXT-001"], ship_blocking=False)
    path = root / "ext.yaml"
    path.write_text(contract_yaml("C-EXT", "1.0.0", "External", [inv], [external, plain]))
    return path


@pytest.fixture
def child_imports_traingate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)  # the pytest child must import traingate


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_external_evidence_is_never_run_and_never_discharges(tmp_path: Path) -> None:
    path = project(tmp_path)
    loaded = load_contract(path)
    assert loaded.findings == [] and loaded.contract is not None
    assert loaded.contract.gates[0].external_evidence == [EXTERNAL]
    result = verify([loaded], tmp_path)
    assert result.invariants == {"INV-EXT-001": "discharged"}
    assert result.gates == {"GATE-EXT-001": "missing", "GATE-EXT-002": "discharged"}
    assert result.external == {"GATE-EXT-001": [EXTERNAL]}
    assert EXTERNAL not in result.tests  # never handed to pytest
    assert not result.ok  # the ship-blocking gate is not discharged
    assert result.to_dict()["gates"]["GATE-EXT-001"]["external"] == [EXTERNAL]


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_verify_prints_external_references(tmp_path: Path) -> None:
    path = project(tmp_path)
    text = CliRunner().invoke(cli, ["verify", "--root", str(tmp_path), str(path)])
    assert text.exit_code == 1, text.output
    assert f"  external: {EXTERNAL}  (GATE-EXT-001: never run here, never discharged)" in (
        text.stdout
    )
    assert text.stdout.splitlines()[-1] == "1 passed, 0 failed"
    payload = json.loads(
        CliRunner()
        .invoke(cli, ["verify", "--format", "json", "--root", str(tmp_path), str(path)])
        .stdout
    )
    assert payload["gates"]["GATE-EXT-001"] == {
        "status": "missing",
        "ship_blocking": True,
        "contract": "C-EXT@1.0.0",
        "external": [EXTERNAL],
    }


def test_external_evidence_must_be_text(tmp_path: Path) -> None:
    path = project(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["gates"][0]["external_evidence"] = [""]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (finding,) = load_contract(path).findings
    assert (finding.code, finding.field) == ("TG100", "gates[0].external_evidence[0]")
