"""``contracts audit``'s bulk path: which logs it takes, and that its output is the same.

(The Hypothesis falsifier ``falsifiers/test_audit_batch.py`` proves the two replays
identical on random logs; these pin the choice of path and the command line's output.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from traingate_cli.run_cmds import audit

from traingate.ci.audit import AuditError, audit_metrics, columns
from traingate.ci.audit.bulk import BulkMetrics
from traingate.ci.audit.columns import step_columns
from traingate.contract.regime import Finetune
from traingate.runtime.evidence import MetricsBuffer

MAPPING = {"step": "step", "loss": "loss", "grad_norm": "grad_norm"}
ONLY = ["INV-TRAIN-001", "INV-TRAIN-002", "INV-TRAIN-007", "INV-TRAIN-008"]


def step_csv(path: Path, cells: list[str], header: str = "step,loss,grad_norm") -> Path:
    path.write_text("\n".join([header, *cells]) + "\n")
    return path


def healthy(n: int) -> list[str]:
    return [
        f"{s},{4.0 - s / 50 + math.sin(s) / 100!r},{1.0 + math.cos(s) / 10!r}" for s in range(n)
    ]


def test_a_plain_csv_is_typed_in_bulk(tmp_path: Path) -> None:
    log = step_csv(tmp_path / "s.csv", ["0,2.5,1", "1, 2.25 ,", "2,nan,-inf", "3,1e-3,+1.5"])
    cols = step_columns(log, None, MAPPING, {}, "auto")
    assert cols is not None
    assert cols.steps.tolist() == [0, 1, 2, 3] and cols.lines.tolist() == [2, 3, 4, 5]
    assert cols.values["loss"][:2].tolist() == [2.5, 2.25] and math.isnan(cols.values["loss"][2])
    assert cols.values["grad_norm"][2] == -math.inf and cols.filled["grad_norm"].tolist() == [
        True,
        False,
        True,
        True,
    ]
    assert cols.row(1).where() == "row 2 (line 3), step 1"


def test_a_csv_of_decimals_only_is_read_as_floats_the_same_way(tmp_path: Path) -> None:
    # no cell can spell NaN/inf: arrow parses the floats itself (blanks trimmed, "" empty)
    log = step_csv(tmp_path / "s.csv", ["0,2.5,1", "1, 2.25 ,", "2,+.5,1e400", "3,1.,-0"])
    cols = step_columns(log, None, MAPPING, {}, "auto")
    assert cols is not None
    assert cols.values["loss"].tolist() == [2.5, 2.25, 0.5, 1.0]
    assert cols.values["grad_norm"][2] == math.inf and cols.filled["grad_norm"].tolist() == [
        True,
        False,
        True,
        True,
    ]
    assert math.copysign(1, cols.values["grad_norm"][3]) == -1


@pytest.mark.parametrize(
    "cells, where, mapping",
    [
        (['0,"2.5",1'], {}, MAPPING),  # a quoted cell
        (["0,2.5,1\r", "1,2.4,1\r"], {}, MAPPING),  # CRLF line ends
        (["0,2.5,1", "", "1,2.4,1"], {}, MAPPING),  # a blank line (it shifts line numbers)
        (["0,2.5", "1,2.4,1"], {}, MAPPING),  # a short row (its missing cell is empty)
        (["0,nan(1),1"], {}, MAPPING),  # arrow reads it as NaN, Python's float() does not
        (["0,1_0,1"], {}, MAPPING),  # Python's float() reads it, arrow does not
        (["0,2.5,1"], {"step": "0"}, MAPPING),  # --where
        (["0,2.5,1"], {}, {**MAPPING, "grad_norm": "val_loss"}),  # a validation value
        ([",,1"], {}, MAPPING),  # an empty step cell
        (["0,,"], {}, MAPPING),  # a row carrying no step value
        (["0.5,2.5,1"], {}, MAPPING),  # a step that is not an integer
    ],
)
def test_anything_else_is_read_row_by_row(
    tmp_path: Path, cells: list[str], where: dict[str, str], mapping: dict[str, str]
) -> None:
    assert step_columns(step_csv(tmp_path / "s.csv", cells), None, mapping, where, "auto") is None


def test_a_bad_cell_is_still_reported_where_it_is(tmp_path: Path) -> None:
    log = step_csv(tmp_path / "s.csv", ["0,2.5,1", "1,nan(1),1"])
    with pytest.raises(AuditError, match=r"row 2 \(line 3\): column loss: 'nan\(1\)' is not"):
        audit_metrics(log, None, Finetune(), {}, MAPPING, tmp_path / "run", only=ONLY)


def test_a_parquet_log_with_nulls_is_typed_in_bulk(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    data = {"step": [0, 1, 2], "loss": [2.5, None, float("nan")], "grad_norm": [1, 2, None]}
    pq.write_table(pa.table(data), path)
    cols = step_columns(path, None, MAPPING, {}, "auto")
    assert cols is not None and cols.lines is None
    assert cols.filled["loss"].tolist() == [True, False, True]
    assert cols.values["grad_norm"][:2].tolist() == [1.0, 2.0]
    assert cols.scalars(2).keys() == {"loss", "grad_norm"}


def test_bulk_metrics_read_back_as_the_guards_own(tmp_path: Path) -> None:
    loss, grad_norm = [1.5, 1.25, math.nan, 1.0, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]
    changed = [True, False, False, True, False]  # the limit changed at rows 0 and 3
    limit = np.array([2.0, 2.0, 2.0, 3.0, 3.0])
    plain = MetricsBuffer()
    for step in range(5):
        plain.add("step", step, None, {"loss": loss[step], "grad_norm": grad_norm[step]})
        if changed[step]:
            plain.add("step", step, None, {"limit/X": float(limit[step])})
    values = [("loss", np.array(loss)), ("grad_norm", np.array(grad_norm))]
    bulk = BulkMetrics(values, [("limit/X", np.array(changed), limit)], np.arange(5), 5)
    bulk.SLICE = 2  # row groups of two log rows: the layout carries across them
    for buffer in (plain, bulk):
        buffer.add("final", 4, None, {"loss": 0.5})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = pq.read_table(plain.write(tmp_path / "a")), pq.read_table(bulk.write(tmp_path / "b"))
    assert len(bulk) == len(plain) == 13
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    shown = [[repr(v) if isinstance(v, float) else v for v in r.values()] for r in a.to_pylist()]
    assert shown == [
        [repr(v) if isinstance(v, float) else v for v in r.values()] for r in b.to_pylist()
    ]


def test_the_command_line_says_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = healthy(30) + ["30,4.0,1e9"] * 6  # five exploding norms abort INV-TRAIN-002
    log = step_csv(tmp_path / "s.csv", cells)
    args = [str(log), "--map", "step", "--map", "loss", "--map", "grad_norm"]
    args += [a for i in ONLY for a in ("--only", i)]
    outputs = []
    for out in ("bulk", "rows"):
        if out == "rows":
            monkeypatch.setattr(columns, "step_columns", lambda *a, **k: None)
        result = CliRunner().invoke(audit, [*args, "--out", str(tmp_path / out)])
        assert result.exit_code == 1, result.output
        outputs.append(result.output.replace(str(tmp_path / out), "RUN"))
        audited = json.loads((tmp_path / out / "audit.json").read_text())
        assert audited["stopped_at"]["invariant"] == "INV-TRAIN-002"
    assert outputs[0] == outputs[1]
    assert "stopped at row 35 by INV-TRAIN-002" in outputs[0]
