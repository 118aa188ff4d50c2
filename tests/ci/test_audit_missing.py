"""``contracts audit`` never drops a row silently: an empty or null mapped cell (how pandas
writes NaN to CSV, JSON lines and parquet) is a NaN observation, an empty step/epoch cell
on a row with values is a located usage error, and every row still skipped is listed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from traingate_cli.run_cmds import audit

from traingate.ci.audit import Audited, AuditError, audit_metrics
from traingate.ci.runcheck import check_run

from .conftest import contract_yaml, gate, invariant

CONTRACT = contract_yaml(
    "C-TEST-NAN",
    "1.0.0",
    "Finite-ness under replay",
    [
        invariant("INV-NAN-001", "Finite loss", "finite", "step", {"observations": ["loss"]}),
        invariant(
            "INV-NAN-002", "Finite val loss", "finite", "validation", {"observations": ["val_loss"]}
        ),
        invariant("INV-NAN-003", "Finite grad norm", "finite", "step", {"observations": ["gn"]}),
    ],
    [gate("GATE-NAN-001", ["INV-NAN-001"]), gate("GATE-NAN-002", ["INV-NAN-002"])],
)
STEPS = {"step": "step", "loss": "loss"}
LOSSES = [2.0, 1.9, None, 1.8, 1.7]  # step 2's loss went NaN: pandas writes it empty / null


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "nan.yaml"
    path.write_text(CONTRACT)
    return path


def replay(
    log: Path,
    contract: Path,
    mapping: Mapping[str, str],
    only: Sequence[str] = ("INV-NAN-001",),
    where: Mapping[str, str] | None = None,
) -> Audited:
    return audit_metrics(
        log, [contract], None, {}, mapping, log.parent / f"run-{log.name}", only=only, where=where
    )


def audit_steps_cli(log: Path, contract: Path, out: Path) -> Result:
    """``contracts audit LOG`` of its steps under INV-NAN-001."""
    args = [str(log), "--contracts", str(contract), "--map", "step", "--map", "loss"]
    return CliRunner().invoke(audit, [*args, "--only", "INV-NAN-001", "--out", str(out)])


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def csv_log(tmp_path: Path) -> Path:
    cells = ["" if v is None else str(v) for v in LOSSES]
    return write_csv(
        tmp_path / "steps.csv", "step,loss,lr", *(f"{s},{c},0.1" for s, c in enumerate(cells))
    )


def jsonl_log(tmp_path: Path) -> Path:
    path = tmp_path / "steps.jsonl"
    lines = [json.dumps({"step": s, "loss": v, "lr": 0.1}) for s, v in enumerate(LOSSES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def parquet_log(tmp_path: Path) -> Path:
    path = tmp_path / "steps.parquet"
    columns = {"step": list(range(len(LOSSES))), "loss": LOSSES, "lr": [0.1] * len(LOSSES)}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("writer", "line"),
    [(csv_log, 4), (jsonl_log, 3), (parquet_log, None)],
    ids=["csv", "jsonl", "parquet"],
)
def test_an_empty_loss_is_nan_and_aborts_at_its_row(
    tmp_path: Path, contract: Path, writer: Callable[[Path], Path], line: int | None
) -> None:
    log = writer(tmp_path)
    done = replay(log, contract, STEPS)
    assert done.audit["stopped_at"] == {
        "row": 3,
        "line": line,
        "point": "step",
        "invariant": "INV-NAN-001",
        "step": 2,
        "epoch": None,
    }
    assert "non-finite loss" in done.verdict.aborted_by.detail
    assert done.verdict.invariants["INV-NAN-001"].evaluations == 3  # steps 3 and 4 never ran
    assert done.audit["replayed"] == 3 and done.audit["skipped"] == 0
    assert check_run(tmp_path / f"run-{log.name}").exit_code == 1


def test_an_empty_cell_beside_filled_ones_is_nan_too(tmp_path: Path, contract: Path) -> None:
    log = write_csv(tmp_path / "gn.csv", "step,loss,grad", "0,2.0,1.0", "1,1.9,", "2,1.8,1.1")
    done = replay(log, contract, {**STEPS, "grad": "gn"}, only=["INV-NAN-003"])
    assert done.audit["stopped_at"]["row"] == 2
    assert "non-finite gn" in done.verdict.aborted_by.detail


def test_an_empty_step_cell_on_a_row_with_values_is_a_located_error(
    tmp_path: Path, contract: Path
) -> None:
    log = write_csv(tmp_path / "gap.csv", "step,loss", "0,2.0", ",1.9", "2,1.8")
    message = r"gap\.csv: row 2 \(line 3\): column step \(the step index\) is empty"
    with pytest.raises(AuditError, match=message):
        replay(log, contract, STEPS)
    outcome = audit_steps_cli(log, contract, tmp_path / "cli")
    assert outcome.exit_code == 2 and "column step (the step index) is empty" in outcome.output
    assert "Traceback" not in outcome.output


MIXED = (  # a step log and its validation passes concatenated by pandas: NaN cells empty
    "step,epoch,loss,val,note",
    "0,,2.0,,",
    "1,,1.9,,",
    "1,0,,1.8,",  # row 3: a validation pass
    "2,,1.7,,",
    ",,,,done",  # row 5: a summary row carrying nothing mapped
)


def test_rows_of_another_kind_are_skipped_and_listed_with_why(
    tmp_path: Path, contract: Path
) -> None:
    log = write_csv(tmp_path / "mixed.csv", *MIXED)
    done = replay(log, contract, STEPS)  # steps only: the validation row is not a NaN step
    assert done.verdict.invariants["INV-NAN-001"].status == "pass"
    listed = [
        {"row": 3, "line": 4, "why": "not a step row: it fills epoch, val, which no step row does"},
        {"row": 5, "line": 6, "why": "not a step row: it fills note, which no step row does"},
    ]
    assert (done.audit["rows"], done.audit["replayed"], done.audit["skipped"]) == (5, 3, 2)
    assert done.audit["skipped_rows"] == listed
    written = json.loads((tmp_path / "run-mixed.csv" / "audit.json").read_text())
    assert written["skipped_rows"] == listed and written["excluded"] == 0


def test_nan_rows_of_a_mixed_log_take_the_kind_whose_cells_they_fill(
    tmp_path: Path, contract: Path
) -> None:
    both = {**STEPS, "epoch": "epoch", "val": "val_loss"}
    steps_nan = write_csv(tmp_path / "a.csv", *MIXED[:4], "2,,,,", *MIXED[5:])
    done = replay(steps_nan, contract, both, only=["INV-NAN-001", "INV-NAN-002"])
    assert done.audit["stopped_at"]["row"] == 4 and done.audit["stopped_at"]["point"] == "step"
    val_nan = write_csv(tmp_path / "b.csv", *MIXED[:3], "1,0,,,", *MIXED[4:])
    done = replay(val_nan, contract, both, only=["INV-NAN-001", "INV-NAN-002"])
    assert done.audit["stopped_at"] == {
        "row": 3,
        "line": 4,
        "point": "validation",
        "invariant": "INV-NAN-002",
        "step": 1,
        "epoch": 0,
    }


def test_a_validation_only_audit_skips_train_rows_but_not_a_nan_pass(
    tmp_path: Path, contract: Path
) -> None:
    # Lightning-style: epoch and step on every row, train and validation rows interleaved
    log = write_csv(
        tmp_path / "metrics.csv",
        "epoch,step,train_loss,val_loss",
        "0,0,2.0,",
        "0,1,1.9,",
        "0,1,,1.8",
        "1,2,1.7,",
        "1,3,,",  # row 5: the validation pass of epoch 1 went NaN
    )
    done = replay(log, contract, {"epoch": "epoch", "val_loss": "val_loss"}, only=["INV-NAN-002"])
    assert done.audit["validation_index"] == "nth"  # a metrics.csv of this shape is Lightning's
    assert done.audit["stopped_at"]["row"] == 5
    assert [r["row"] for r in done.audit["skipped_rows"]] == [1, 2, 4]
    why = done.audit["skipped_rows"][0]["why"]
    assert why == "not a validation row: it fills train_loss, which no validation row does"


def test_a_row_that_could_be_either_kind_is_a_located_error(tmp_path: Path, contract: Path) -> None:
    log = write_csv(
        tmp_path / "both.csv", "epoch,step,loss,val_loss", "0,0,2.0,", "0,1,,1.8", "1,2,,"
    )
    with pytest.raises(AuditError, match=r"row 3 \(line 4\), step 2, epoch 1: .*cannot tell"):
        replay(
            log,
            contract,
            {**STEPS, "epoch": "epoch", "val_loss": "val_loss"},
            only=["INV-NAN-001", "INV-NAN-002"],
        )


def test_where_exclusions_are_counted(tmp_path: Path, contract: Path) -> None:
    log = write_csv(
        tmp_path / "phases.csv", "step,phase,loss", "0,train,2.0", "0,eval,9.0", "1,train,1.9"
    )
    done = replay(log, contract, STEPS, where={"phase": "train"})
    assert (done.audit["rows"], done.audit["excluded"], done.audit["skipped"]) == (2, 1, 0)


def test_cli_names_the_skipped_rows(tmp_path: Path, contract: Path) -> None:
    log = write_csv(tmp_path / "mixed.csv", *MIXED)
    outcome = audit_steps_cli(log, contract, tmp_path / "cli")
    assert outcome.exit_code == 0, outcome.output
    assert "3 of 5 rows replayed" in outcome.output and "2 rows skipped" in outcome.output
    assert "skipped row 3 (line 4): not a step row: it fills epoch, val" in outcome.output
    assert "skipped row 5 (line 6): not a step row: it fills note" in outcome.output


def test_cli_shows_ten_skipped_rows_and_points_at_audit_json_for_the_rest(
    tmp_path: Path, contract: Path
) -> None:
    passes = [f"{s},{s // 2},,1.8," for s in range(12)]  # twelve validation rows, skipped
    log = write_csv(tmp_path / "many.csv", *MIXED[:3], *passes)
    outcome = audit_steps_cli(log, contract, tmp_path / "cli")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.count("  skipped row ") == 10
    assert f"… and 2 more, listed in {tmp_path / 'cli' / 'audit.json'}" in outcome.output
    written = json.loads((tmp_path / "cli" / "audit.json").read_text())
    assert [r["row"] for r in written["skipped_rows"]] == list(range(3, 15))
