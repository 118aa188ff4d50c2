"""``contracts import FILE --from pv``: end to end, from a pv-shaped file to a contract that
``contracts validate`` accepts with 0 errors, with a row per source id.

Also: a broken pv file is one located line on stderr and exit 2, an existing ``--out`` is
never overwritten without ``--force``, and ``verify`` reports a gate's external evidence as
``external`` (never run, never discharged).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from traingate_cli.contracts_cmd import cli

REPO = Path(__file__).resolve().parents[2]
PV = REPO / "tests" / "fixtures" / "pv"
FIXTURES = ["pretrain-v2.yaml", "tiny.yaml"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def convert(name: str, out: Path, *extra: str) -> Result:
    return run(
        "import", str(PV / name), "--from", "pv", "--out", str(out), "--root", str(REPO), *extra
    )


def table(result: Result) -> dict[str, str]:
    """The printed rows: source id → result column."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("source id"))
    rows = {}
    for line in lines[start + 1 : -1]:
        source, rest = line.split("  ", 1)
        rows[source.strip()] = rest.strip()
    return rows


@pytest.mark.parametrize("name", FIXTURES)
def test_each_pv_fixture_imports_to_a_file_that_validates_with_0_errors(
    tmp_path: Path, name: str
) -> None:
    out = tmp_path / "imported.yaml"
    result = convert(name, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.stdout.splitlines()[-1].startswith(f"wrote {out}: ")
    assert " 0 errors " in result.stdout.splitlines()[-1]
    validated = run("validate", "--root", str(REPO), "--format", "json", str(out))
    assert validated.exit_code == 0, validated.output
    payload = json.loads(validated.stdout)
    assert payload["summary"]["errors"] == 0 and payload["summary"]["invariants"] >= 1
    source = yaml.safe_load((PV / name).read_text(encoding="utf-8"))
    rows = table(result)
    ids = [str(source["contract_id"])] + [str(e["id"]) for e in source.get("gates", [])]
    ids += [str(e["id"]) for e in source.get("invariants", [])]
    assert set(ids) <= set(rows)


def test_the_table_says_mapped_or_needs_a_human_per_source_id(tmp_path: Path) -> None:
    rows = table(convert("pretrain-v2.yaml", tmp_path / "out.yaml"))
    assert rows["per_step_metrics"].startswith("mapped")
    assert rows["convergence"].startswith("mapped")
    assert rows["no_placeholder"].startswith("mapped")
    assert rows["hyperparameter_defaults.from_scratch"].startswith("mapped  ")
    assert rows["INV-PRE-005"].startswith("needs a human (not imported)")
    assert "rule in prose only" in rows["INV-PRE-005"]
    assert rows["GATE-PRE-003"].startswith("needs a human (draft)")
    assert "ship_blocking not given" in rows["GATE-PRE-003"]
    assert rows["C-TRAIN-PRETRAIN-V2"].startswith("needs a human (draft)")
    assert "pv status ACTIVE; imported as draft" in rows["C-TRAIN-PRETRAIN-V2"]


def test_the_written_file_says_where_it_came_from_and_what_needs_a_human(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    convert("pretrain-v2.yaml", out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Imported from pretrain-v2.yaml by `contracts import --from pv`")
    data = yaml.safe_load(text)
    assert data["status"] == "draft"
    assert "DRAFT (needs a human), not imported:" in data["description"]
    assert data["modes"]["from-scratch"]["warmup"] == 1000


def test_the_default_out_is_beside_the_source(tmp_path: Path) -> None:
    source = tmp_path / "tiny.yaml"
    source.write_text((PV / "tiny.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    result = run("import", str(source), "--from", "pv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny.traingate.yaml").is_file()


def test_reimport_onto_an_existing_file_refuses_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    out.write_text("# mine\n", encoding="utf-8")
    refused = convert("tiny.yaml", out)
    assert refused.exit_code == 2
    assert refused.stderr == f"contracts: {out} exists: pass --force to overwrite it\n"
    assert out.read_text(encoding="utf-8") == "# mine\n"
    forced = convert("tiny.yaml", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["contract"] == "C-TINY-METRICS"


def test_a_broken_pv_file_names_the_file_and_field_and_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    result = convert("broken-changelog.yaml", out)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    source = PV / "broken-changelog.yaml"
    line = next(
        n for n, text in enumerate(source.read_text().splitlines(), 1) if "date forgotten" in text
    )
    assert result.stderr.splitlines() == [
        f"contracts: {source}:{line}:7: metadata.changelog[1]: cannot read changelog entry "
        "'1.0.0 - first version, date forgotten': expected \"VERSION (YYYY-MM-DD): change\""
    ]
    assert not out.exists()


def test_unreadable_input_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("contract_id: [unclosed\n", encoding="utf-8")
    result = run("import", str(bad), "--from", "pv", "--out", str(tmp_path / "o.yaml"))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"contracts: {bad}:")
    missing = run("import", str(tmp_path / "nope.yaml"), "--from", "pv")
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_a_non_pv_file_is_refused(tmp_path: Path) -> None:
    result = run("import", str(REPO / "contracts" / "liveness-v1.yaml"), "--from", "pv",
                 "--out", str(tmp_path / "o.yaml"))  # fmt: skip
    assert result.exit_code == 2
    assert "not a pv contract: no top-level `contract_id`" in result.stderr


def test_import_is_listed_in_help() -> None:
    assert "import" in run("--help").stdout
    assert "--from [pv]" in run("import", "--help").stdout


PROBE = """
import sys
from traingate_cli.contracts_cmd import main
sys.argv = ["contracts", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
loaded = set(sys.modules)
print(sorted(m for m in ("torch", "numpy", "traingate_cli.import_cmd") if m in loaded))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["validate", "contracts"], "[]"),
        (["import", "tests/fixtures/pv/tiny.yaml", "--from", "pv", "--out", "OUT"],
         "['traingate_cli.import_cmd']"),
    ],
    ids=["validate-never-loads-import", "import-is-torch-free"],
)  # fmt: skip
def test_validate_stays_lazy_and_import_torch_free(
    tmp_path: Path, args: list[str], want: str
) -> None:
    args = [str(tmp_path / "o.yaml") if a == "OUT" else a for a in args]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == want, out.stdout + out.stderr
