"""Start-up work ``contracts validate`` skips: params and regime models built on first use,
the collector held off while the command's modules import, and the same findings either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from traingate.contract.validation import validate_paths

REPO = Path(__file__).resolve().parents[2]
BROKEN = REPO / "tests" / "fixtures" / "broken"


def fresh(code: str) -> str:
    """The last line ``code`` prints, run in a new interpreter at the repository root."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


BUILT = """
import json, sys
from pathlib import Path
import traingate
from traingate.contract.kinds import KINDS
from traingate.contract.regime import Finetune, FromScratch
{action}
print(json.dumps({{
    "kinds": sorted(k for k, kind in KINDS.items() if kind.params_model.__pydantic_complete__),
    "regimes": [m.__name__ for m in (Finetune, FromScratch) if m.__pydantic_complete__],
}}))
"""


def test_importing_traingate_builds_no_params_or_regime_model() -> None:
    built = json.loads(fresh(BUILT.format(action="")))
    assert built == {"kinds": [], "regimes": []}


def test_validating_builds_only_the_params_models_of_the_kinds_named() -> None:
    path = REPO / "contracts" / "loss-balance-v1.yaml"
    named = sorted({inv["check"] for inv in yaml.safe_load(path.read_text())["invariants"]})
    action = (
        "from traingate.contract.validation import validate_paths\n"
        f"report = validate_paths([Path({str(path)!r})], Path({str(REPO)!r}))\n"
        "assert not report.errors, [f.text() for f in report.errors]"
    )
    built = json.loads(fresh(BUILT.format(action=action)))
    assert built == {"kinds": named, "regimes": []}
    assert named == ["loss_balance"]


def test_a_deferred_regime_model_validates_on_first_use() -> None:
    action = (
        "from pydantic import ValidationError\n"
        "assert FromScratch(8).symbols() == {'vocab_size': 8.0}\n"
        "try:\n"
        "    FromScratch(1)\n"
        "except ValidationError as exc:\n"
        "    assert exc.errors()[0]['type'] == 'greater_than_equal', exc\n"
        "else:\n"
        "    raise AssertionError('vocab_size 1 accepted')"
    )
    assert json.loads(fresh(BUILT.format(action=action)))["regimes"] == ["FromScratch"]


def test_findings_are_the_same_when_the_models_are_built_on_first_use() -> None:
    # In a new interpreter each params model is built by the first contract that names its
    # kind; here a first validation has built them already: the findings must agree.
    code = (
        "import json\nfrom pathlib import Path\n"
        "from traingate.contract.validation import validate_paths\n"
        f"report = validate_paths([Path({str(BROKEN)!r})], Path({str(REPO)!r}))\n"
        "print(json.dumps([f.text() for f in report.findings]))"
    )
    first_use = json.loads(fresh(code))
    validate_paths([BROKEN], REPO)  # builds the models these contracts name, if none did
    warm = [f.text() for f in validate_paths([BROKEN], REPO).findings]
    assert first_use == warm
    assert len(warm) > 30  # the broken fixtures: one or more findings each


GC_PROBE = """
import gc, json, sys
{before}
import traingate_cli.common as common
during = []
validate_paths = common.validate_paths
def probe(*args):
    during.append(gc.isenabled())
    return validate_paths(*args)
common.validate_paths = probe
from traingate_cli.contracts_cmd import main
sys.argv = ["contracts", *{argv!r}]
try:
    main()
except SystemExit:
    pass
print(json.dumps({{"during": during, "after": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


def test_validate_collects_normally_once_its_modules_are_imported() -> None:
    state = json.loads(fresh(GC_PROBE.format(before="", argv=["validate", "--strict"])))
    assert state["during"] == [True]  # held off for the imports only
    assert state["after"] is True
    assert state["frozen"] > 10_000  # the start-up objects: modules, pydantic schemas


def test_no_command_imported_leaves_the_collector_as_it_was() -> None:
    state = json.loads(fresh(GC_PROBE.format(before="", argv=["--version"])))
    assert state == {"during": [], "after": True, "frozen": 0}


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    code = GC_PROBE.format(before="gc.disable()", argv=["validate", "--strict"])
    state = json.loads(fresh(code))
    assert state == {"during": [False], "after": False, "frozen": 0}
