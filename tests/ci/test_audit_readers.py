"""``contracts audit`` reads the logs trainers leave on disk: an MLflow file-store run, a
Hugging Face ``trainer_state.json`` and a Lightning CSVLogger ``metrics.csv``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from traingate_cli.run_cmds import audit

from traingate.ci.audit import Audited, AuditError
from traingate.ci.audit.auditlog import audit_metrics
from traingate.ci.audit.tables import detect_format
from traingate.ci.runcheck import check_run
from traingate.contract.regime import Finetune

from .conftest import contract_yaml, gate, invariant

CONTRACT = contract_yaml(
    "C-TEST-READERS",
    "1.0.0",
    "Step and validation health under replay",
    [
        invariant(
            "INV-RD-001", "Finite", "finite", "step", {"observations": ["loss", "grad_norm"]}
        ),
        invariant(
            "INV-RD-002",
            "Gradient norm",
            "gradient_norm",
            "step",
            {"min_norm": 0.001, "max_norm": 100, "patience": 2},
        ),
        invariant(
            "INV-RD-003",
            "Non-divergence",
            "non_divergence",
            "validation",
            {"epoch_zero_cap": 10.0, "ratio_limit": 2.0},
        ),
    ],
    [gate("GATE-RD-001", ["INV-RD-001", "INV-RD-002", "INV-RD-003"])],
)
HF_MAP = {"step": "step", "loss": "loss", "grad_norm": "grad_norm", "eval_loss": "val_loss"}


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "readers.yaml"
    path.write_text(CONTRACT)
    return path


def run(log: Path, contract: Path, mapping: Mapping[str, str], **kw: Any) -> tuple[Audited, Path]:
    """``audit_metrics`` of ``log`` into a fresh run dir beside it, and that run dir."""
    out = log.parent / f"run-{len(list(log.parent.glob('run-*')))}"
    return audit_metrics(log, [contract], Finetune(), {}, mapping, out, **kw), out


def cli(log: Path, contract: Path, *args: str) -> Result:
    """``contracts audit LOG --contracts CONTRACT ARGS`` into a fresh run dir."""
    out = log.parent / f"cli-{len(list(log.parent.glob('cli-*')))}"
    argv = [str(log), "--contracts", str(contract), "--out", str(out), *args]
    return CliRunner().invoke(audit, argv)


def maps(mapping: Mapping[str, str]) -> list[str]:
    """``--map COLUMN=OBS`` arguments for ``mapping``."""
    return [a for c, o in mapping.items() for a in ("--map", f"{c}={o}")]


def recorded(run_dir: Path, name: str) -> list[tuple[str, int, int]]:
    """``(point, step, epoch)`` of each recorded value of ``name`` in the run's metrics."""
    rows = pq.read_table(run_dir / "metrics.parquet").to_pylist()
    return [(r["point"], r["step"], r["epoch"]) for r in rows if r["name"] == name]


def assert_located_usage_error(result: Result, *parts: str) -> None:
    """Exit 2 with one line naming ``parts``, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for part in parts:
        assert part in result.output, result.output


# --- MLflow ---------------------------------------------------------------------------


def mlflow_run(root: Path, series: Mapping[str, Sequence[tuple[int, float]]]) -> Path:
    """``root/mlruns/0/<run>/metrics/<name>`` files of ``timestamp value step`` lines."""
    run_dir = root / "mlruns" / "0" / "6f1c"
    for name, points in series.items():
        file = run_dir / "metrics" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("".join(f"{1700000000000 + s} {v} {s}\n" for s, v in points))
    (run_dir / "meta.yaml").write_text("run_id: 6f1c\n")
    return run_dir


MLFLOW_MAP = {"step": "step", "train/loss": "loss", "grad_norm": "grad_norm"}


def test_mlflow_run_passes_and_a_nan_loss_stops_it_at_that_row(
    tmp_path: Path, contract: Path
) -> None:
    losses = [(s, 2.0 - 0.1 * s) for s in range(6)]
    series = {
        "train/loss": losses,
        "grad_norm": [(s, 1.0) for s in range(6)],
        "val/loss": [(2, 1.9), (5, 1.6)],
    }
    mapping = {**MLFLOW_MAP, "val/loss": "val_loss"}
    healthy, out = run(mlflow_run(tmp_path / "ok", series), contract, mapping)
    assert healthy.audit["format"] == "mlflow" and healthy.audit["validation_index"] == "nth"
    assert healthy.verdict.invariants["INV-RD-001"].evaluations == 6
    assert check_run(out).exit_code == 0
    assert recorded(out, "val_loss") == [("validation", 2, 0), ("validation", 5, 1)]
    series["train/loss"] = [*losses[:3], (3, math.nan), *losses[4:]]
    failed, out = run(mlflow_run(tmp_path / "nan", series), contract, mapping)
    assert failed.audit["stopped_at"]["row"] == 4
    assert failed.audit["stopped_at"]["invariant"] == "INV-RD-001"
    assert failed.audit["stopped_at"]["step"] == 3
    assert check_run(out).exit_code == 1


def test_mlflow_exploding_grad_norm_fails_on_the_cli_and_a_bad_line_is_located(
    tmp_path: Path, contract: Path
) -> None:
    norms = [(0, 1.0), (1, 1.0), (2, 500.0), (3, 800.0), (4, 1.0)]
    series = {"train/loss": [(s, 2.0) for s in range(5)], "grad_norm": norms}
    run_dir = mlflow_run(tmp_path, series)
    result = cli(run_dir, contract, *maps(MLFLOW_MAP))
    assert result.exit_code == 1, result.output
    assert "stopped at row 4 by INV-RD-002" in result.output
    (run_dir / "metrics" / "grad_norm").write_text("1700000000000 1.0 0\n1700000000001 x 1\n")
    result = cli(run_dir, contract, *maps(MLFLOW_MAP))
    assert_located_usage_error(result, f"{run_dir / 'metrics' / 'grad_norm'}:2:")


# --- Hugging Face trainer_state.json -------------------------------------------------


def trainer_state(path: Path, history: list[dict[str, Any]], logging_steps: int) -> Path:
    """A ``trainer_state.json`` as the Trainer writes it (``json.dumps``: NaN as ``NaN``)."""
    state = {"global_step": history[-1]["step"], "logging_steps": logging_steps}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, "log_history": history}, indent=2))
    return path


def hf_history(every: int, grad_norms: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Train entries every ``every`` steps, an eval entry after the 3rd and 6th, a summary."""
    norms = grad_norms or [1.0] * 6
    history: list[dict[str, Any]] = []
    for i in range(6):
        step = every * (i + 1)
        loss = {"loss": 2.0 - 0.1 * i, "grad_norm": norms[i], "learning_rate": 5e-5}
        history.append({**loss, "epoch": step / (6 * every), "step": step})
        if i in (2, 5):
            history.append({"epoch": step / (6 * every), "eval_loss": 1.9 - 0.1 * i, "step": step})
    history.append({"epoch": 1.0, "step": 6 * every, "train_loss": 1.8, "total_flos": 1.0})
    return history


def test_trainer_state_passes_with_nth_eval_as_index_and_warns_of_windowed_averages(
    tmp_path: Path, contract: Path
) -> None:
    log = trainer_state(tmp_path / "checkpoint-60" / "trainer_state.json", hf_history(10), 10)
    assert detect_format(log) == detect_format(log.parent) == "hf"
    done, out = run(log.parent, contract, HF_MAP)
    assert check_run(out).exit_code == 0
    assert done.audit["validation_index"] == "nth"
    assert recorded(out, "val_loss") == [("validation", 30, 0), ("validation", 60, 1)]
    assert [s["row"] for s in done.audit["skipped_rows"]] == [9]  # the summary entry
    (warning,) = done.audit["warnings"]
    assert "average over logging_steps=10 steps" in warning
    assert "logging_nan_inf_filter" in warning
    result = cli(log, contract, *maps(HF_MAP))
    assert result.exit_code == 0, result.output
    assert "warning: each logged loss is an average over logging_steps=10" in result.output
    assert "validation index: the n-th validation row" in result.output


def test_trainer_state_window_is_inferred_from_step_gaps_and_every_step_logs_warn_of_filter(
    tmp_path: Path, contract: Path
) -> None:
    history = hf_history(5)
    log = trainer_state(tmp_path / "a" / "trainer_state.json", history, 0)
    (warning,) = run(log, contract, HF_MAP)[0].audit["warnings"]
    assert "logging_steps=5" in warning
    log = trainer_state(tmp_path / "b" / "trainer_state.json", hf_history(1), 1)
    (warning,) = run(log, contract, HF_MAP)[0].audit["warnings"]
    assert "average" not in warning and "logging_nan_inf_filter" in warning


def test_trainer_state_nan_or_exploding_grad_norm_stops_at_its_entry(
    tmp_path: Path, contract: Path
) -> None:
    nan = hf_history(1, [1.0, 1.0, 1.0, math.nan, 1.0, 1.0])
    log = trainer_state(tmp_path / "nan" / "trainer_state.json", nan, 1)
    assert "NaN" in log.read_text()
    done, out = run(log, contract, HF_MAP)
    assert done.audit["stopped_at"]["row"] == 5  # entry 4 of log_history, after one eval
    assert done.audit["stopped_at"]["invariant"] == "INV-RD-001"
    assert check_run(out).exit_code == 1
    big = hf_history(1, [1.0, 300.0, 400.0, 1.0, 1.0, 1.0])
    log = trainer_state(tmp_path / "big" / "trainer_state.json", big, 1)
    result = cli(log, contract, *maps(HF_MAP))
    assert result.exit_code == 1 and "stopped at row 3 by INV-RD-002" in result.output


def test_malformed_trainer_state_is_a_located_usage_error(tmp_path: Path, contract: Path) -> None:
    log = trainer_state(tmp_path / "trainer_state.json", hf_history(1), 1)
    log.write_text(log.read_text()[:200])
    assert_located_usage_error(cli(log, contract, *maps(HF_MAP)), f"{log}:", "not valid JSON")
    log.write_text(json.dumps({"global_step": 3}))
    assert_located_usage_error(cli(log, contract, *maps(HF_MAP)), "no `log_history` list")
    log.write_text(json.dumps({"log_history": [{"loss": 1.0, "step": 1}, 3]}))
    assert_located_usage_error(cli(log, contract, *maps(HF_MAP)), "log_history[1]")


# --- Lightning CSVLogger metrics.csv -------------------------------------------------

LIGHTNING_MAP = {"step": "step", "train_loss": "loss", "grad_norm": "grad_norm"}


def lightning_csv(path: Path, val_losses: Sequence[float], every: int = 1) -> Path:
    """A CSVLogger ``metrics.csv``: train rows, then a val row twice per training epoch
    (``val_check_interval=0.5``), so ``epoch`` repeats on validation rows."""
    lines = ["epoch,grad_norm,step,train_loss,val_loss"]
    step, vals = 0, iter(val_losses)
    for epoch in range(2):
        for _half in range(2):
            for _ in range(2):
                lines.append(f"{epoch},1.0,{step},{2.0 - 0.05 * step},")
                step += every
            lines.append(f"{epoch},,{step - every},,{next(vals)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lightning_validation_index_is_the_nth_val_row_not_the_training_epoch(
    tmp_path: Path, contract: Path
) -> None:
    log = lightning_csv(tmp_path / "version_0" / "metrics.csv", [1.9, 1.8, 1.7, 1.6])
    assert detect_format(log) == detect_format(log.parent) == "lightning"
    mapping = {**LIGHTNING_MAP, "epoch": "epoch", "val_loss": "val_loss"}
    done, out = run(log, contract, mapping)
    assert done.audit["validation_index"] == "nth" and check_run(out).exit_code == 0
    assert [e for _, _, e in recorded(out, "val_loss")] == [0, 1, 2, 3]
    assert (
        done.audit["mapping"]["nth_validation"] == "epoch" and "epoch" not in done.audit["mapping"]
    )
    assert done.verdict.invariants["INV-RD-001"].evaluations == 8
    # Lightning's epoch repeats on the second validation pass of an epoch: not an index
    with pytest.raises(AuditError, match=r"row 6 .*expected validation of epoch 1, got epoch 0"):
        run(log, contract, mapping, validation_index="column")


def test_lightning_divergence_is_caught_at_the_nth_val_row_and_nan_train_loss_on_cli(
    tmp_path: Path, contract: Path
) -> None:
    log = lightning_csv(tmp_path / "metrics.csv", [1.9, 4.5, 4.0, 3.9])
    mapping = {**LIGHTNING_MAP, "epoch": "epoch", "val_loss": "val_loss"}
    done, _ = run(log, contract, mapping)
    stop = done.audit["stopped_at"]
    assert (stop["row"], stop["invariant"], stop["epoch"]) == (6, "INV-RD-003", 1)
    log.write_text(log.read_text().replace("0,1.0,2,1.9,", "0,1.0,2,nan,"))
    result = cli(log, contract, *maps(LIGHTNING_MAP))
    assert result.exit_code == 1 and "stopped at row 4 by INV-RD-001" in result.output


def test_lightning_step_gaps_warn_and_explicit_log_format_overrides_detection(
    tmp_path: Path, contract: Path
) -> None:
    log = lightning_csv(tmp_path / "logs.csv", [1.9, 1.8, 1.7, 1.6], every=50)
    assert detect_format(log) == "csv"
    plain, _ = run(log, contract, {**LIGHTNING_MAP, "val_loss": "val_loss"})
    assert plain.audit["format"] == "csv" and plain.audit["validation_index"] == "column"
    assert len(plain.audit["skipped_rows"]) == 4  # val rows: no column mapped to epoch
    done, _ = run(log, contract, {**LIGHTNING_MAP, "val_loss": "val_loss"}, fmt="lightning")
    assert done.audit["format"] == "lightning" and done.audit["validation_index"] == "nth"
    (warning,) = done.audit["warnings"]
    assert "up to 50 apart" in warning and "log_every_n_steps" in warning
    args = maps({**LIGHTNING_MAP, "val_loss": "val_loss"})
    result = cli(log, contract, "--log-format", "lightning", *args)
    assert result.exit_code == 0 and "warning: logged steps are up to 50 apart" in result.output


def test_nth_needs_a_validation_value_and_a_folder_of_nothing_known_is_an_error(
    tmp_path: Path, contract: Path
) -> None:
    log = lightning_csv(tmp_path / "metrics.csv", [1.9, 1.8, 1.7, 1.6])
    with pytest.raises(AuditError, match="map a column to val_loss"):
        run(log, contract, LIGHTNING_MAP, validation_index="nth")
    (tmp_path / "empty").mkdir()
    result = cli(tmp_path / "empty", contract, *maps(LIGHTNING_MAP))
    assert_located_usage_error(result, "a folder, but not an MLflow run")
