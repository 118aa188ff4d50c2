"""``contracts verify`` shows pytest's collection errors instead of calling every test missing.

A falsifier file that fails to import used to stop pytest before any test ran: every cited
test came back "missing" and the import error itself was swallowed. Verify now prints
pytest's error text (the file and the exception line) and fails with "collection failed".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from traingate_cli.contracts_cmd import cli

from traingate.ci.verify import verify
from traingate.contract.loading import load_contract

from .conftest import contract_yaml, gate, invariant

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO / "cli")])

GOOD = "def test_holds():\n    assert 1 + 1 == 2\n"
BROKEN = "import no_such_module_for_traingate\n\n\ndef test_broken_import():\n    assert True\n"


def project(root: Path, files: dict[str, str]) -> Path:
    """A temp project: ``falsifiers/<name>`` for each file, one invariant per test, a gate."""
    (root / "falsifiers").mkdir()
    tests = []
    for name, text in files.items():
        (root / "falsifiers" / name).write_text(text)
        fn = text.split("def ", 1)[1].split("(", 1)[0]
        tests.append(f"falsifiers/{name}::{fn}")
    invariants = []
    for n, test in enumerate(tests, start=1):
        inv = invariant(f"INV-COLL-00{n}", f"Test {n}", "non_divergence", "validation",
                        {"epoch_zero_cap": 10.0})  # fmt: skip
        inv["falsified_by"] = [test]
        invariants.append(inv)
    gates = [gate("GATE-COLL-001", [i["id"] for i in invariants])]
    (root / "contracts").mkdir()
    contract = root / "contracts" / "coll.yaml"
    contract.write_text(contract_yaml("C-COLL", "1.0.0", "Collection", invariants, gates))
    return contract


@pytest.fixture
def child_imports_traingate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)  # the pytest child must import traingate


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_verify_prints_the_collection_error_and_fails(tmp_path: Path) -> None:
    contract = project(tmp_path, {"test_broken.py": BROKEN})
    assert run("validate", str(contract)).exit_code == 0  # the test exists: validate is clean
    result = run("verify", str(contract))
    assert result.exit_code == 1, result.output
    assert "Traceback (most recent call last)" not in result.output  # not verify's own crash
    err = result.stderr
    assert "ERROR collecting falsifiers/test_broken.py" in err
    assert "ModuleNotFoundError: No module named 'no_such_module_for_traingate'" in err
    assert "test_broken.py:1" in err  # pytest's location of the failing import
    assert err.rstrip().splitlines()[-1].startswith("contracts: pytest collection failed")
    assert "missing" not in result.output  # no table of "missing" tests hiding the cause


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_one_broken_file_among_good_ones_fails_verify_in_json(tmp_path: Path) -> None:
    contract = project(tmp_path, {"test_good.py": GOOD, "test_broken.py": BROKEN})
    result = run("verify", "--format", "json", str(contract))
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert list(payload["collection_errors"]) == ["falsifiers/test_broken.py"]
    assert (
        "no_such_module_for_traingate" in payload["collection_errors"]["falsifiers/test_broken.py"]
    )
    assert "pytest collection failed (1 errors)" in result.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_a_conftest_that_fails_to_import_is_shown_too(tmp_path: Path) -> None:
    contract = project(tmp_path, {"test_good.py": GOOD})
    (tmp_path / "conftest.py").write_text("import no_such_conftest_dependency\n")
    result = verify([load_contract(contract)], tmp_path)
    assert result.ok is False
    ((node, text),) = result.collection_errors.items()
    assert node.startswith("pytest (exit ")
    assert "no_such_conftest_dependency" in text


@pytest.mark.slow
@pytest.mark.usefixtures("child_imports_traingate")
def test_a_clean_project_has_no_collection_errors(tmp_path: Path) -> None:
    contract = project(tmp_path, {"test_good.py": GOOD})
    result = verify([load_contract(contract)], tmp_path)
    assert result.collection_errors == {}
    assert result.ok is True
    assert run("verify", str(contract)).exit_code == 0
