"""The Guard's event stream and the tracker bridges on it: what a listener sees, what
TensorBoard, MLflow and W&B (offline) end up holding after a run that diverges."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from traingate import FromScratch, Guard, InvariantViolation
from traingate.contract.shipped import shipped_contracts_dir
from traingate.runtime.events import GuardEvent
from traingate.runtime.verdict import load_verdict

PRETRAIN = shipped_contracts_dir() / "training-loop-pretrain-v1.yaml"
ONLY = ["INV-TRAIN-001", "INV-TRAIN-005"]
CAP = 2 * math.log(256)  # INV-TRAIN-005's from-scratch epoch-0 cap at vocab 256
STEPS = 6


def diverging_run(run_dir: Path | None, *listeners) -> None:
    """Six healthy steps, a validation at 3.0, then one at 100: INV-TRAIN-005 aborts."""
    guard = Guard(
        [PRETRAIN], regime=FromScratch(256), only=ONLY, run_dir=run_dir, listeners=listeners
    )
    with pytest.raises(InvariantViolation), guard:
        for step in range(STEPS):
            guard.step(step, loss=5.0 - 0.1 * step, grad_norm=1.0)
            if step == 2:
                guard.validation(0, val_loss=3.0)
        guard.validation(1, val_loss=100.0)


def test_a_listener_sees_the_start_every_recorded_value_the_violation_and_the_end(
    tmp_path: Path,
) -> None:
    seen: list[GuardEvent] = []
    diverging_run(tmp_path, seen.append)
    kinds = [e.kind for e in seen]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("violation") == 1
    steps = [e for e in seen if e.kind == "metrics" and e.data["point"] == "step"]
    assert [e.step for e in steps] == list(range(STEPS))
    assert steps[0].data["loss"] == 5.0 and steps[0].data["grad_norm"] == 1.0
    (cap,) = [e for e in seen if "limit/INV-TRAIN-005" in e.data and e.epoch == 0]
    assert cap.data["limit/INV-TRAIN-005"] == pytest.approx(CAP)
    (violation,) = [e for e in seen if e.kind == "violation"]
    assert violation.data["invariant"] == "INV-TRAIN-005" and violation.epoch == 1
    end = seen[-1]
    assert end.data["ok"] is False
    assert end.data["tallies"]["INV-TRAIN-005"]["status"] == "fail"


def test_a_listener_that_raises_is_dropped_and_the_gate_still_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(event: GuardEvent) -> None:
        calls.append(event.kind)
        raise ConnectionError("tracker down")

    diverging_run(tmp_path, broken)
    assert calls == ["start"]  # dropped after its first failure
    assert "tracker down" in caplog.text
    verdict = load_verdict(tmp_path)
    assert not verdict.ok and verdict.aborted_by.invariant == "INV-TRAIN-005"


def test_on_event_adds_a_listener_after_construction() -> None:
    guard = Guard([PRETRAIN], regime=FromScratch(256), only=ONLY)
    seen: list[str] = []
    guard.on_event(lambda e: seen.append(e.kind))
    guard.step(0, loss=1.0, grad_norm=1.0)
    guard.close()
    assert seen == ["metrics", "summary", "end"]


def test_tensorboard_holds_the_values_limits_violations_and_verdict(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from traingate.integrations.trackers import TensorBoardBridge

    diverging_run(tmp_path / "run", TensorBoardBridge(tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert [s.value for s in events.Scalars("traingate/loss")] == pytest.approx(
        [5.0 - 0.1 * s for s in range(STEPS)]
    )
    assert events.Scalars("traingate/limit/INV-TRAIN-005")[0].value == pytest.approx(CAP)
    assert "traingate/violations/INV-TRAIN-005" in scalars
    texts = events.Tags()["tensors"]
    assert "traingate/violation/text_summary" in texts
    assert "traingate/verdict/text_summary" in texts


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """mlflow tracking into a file store under ``tmp_path`` (no server, no database)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    yield mlflow
    mlflow.set_tracking_uri(None)


def test_mlflow_holds_the_metric_history_and_the_verdict_tags(tmp_path: Path, mlflow_store) -> None:
    mlflow = mlflow_store
    from traingate.integrations.trackers import MLflowBridge

    with mlflow.start_run() as run:
        diverging_run(tmp_path / "run", MLflowBridge())
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "traingate/loss")
    assert [m.step for m in history] == list(range(STEPS))
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["traingate/ok"] == "false"
    assert tags["traingate/status/INV-TRAIN-005"] == "fail"
    assert tags["traingate/status/INV-TRAIN-001"] == "pass"
    assert "INV-TRAIN-005" in tags["traingate/violation/INV-TRAIN-005"]


def test_mlflow_without_a_run_is_a_clear_error(mlflow_store) -> None:
    from traingate.integrations.trackers import MLflowBridge

    with pytest.raises(ValueError, match="needs a run_id or an active run"):
        MLflowBridge()


def test_wandb_offline_run_summary_holds_the_verdict(tmp_path: Path) -> None:
    wandb = pytest.importorskip("wandb")
    from traingate.integrations.trackers import WandbBridge

    run = wandb.init(mode="offline", dir=str(tmp_path), project="traingate-test")
    try:
        diverging_run(tmp_path / "run", WandbBridge(run))
        summary = dict(run.summary)
    finally:
        run.finish()
    assert summary["traingate/ok"] is False
    assert summary["traingate/status/INV-TRAIN-005"] == "fail"
    assert summary["traingate/loss"] == pytest.approx(5.0 - 0.1 * (STEPS - 1))
    assert summary["traingate/violations/INV-TRAIN-005"] == 1
