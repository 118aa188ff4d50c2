"""The Guard's events in the trackers teams already watch: TensorBoard, MLflow, W&B.

Each bridge is a listener (``Guard(listeners=[...])`` or ``guard.on_event(...)``): the
values the Guard records (observed scalars such as ``loss`` and ``grad_norm``, and every
limit it drew, ``limit/INV-TRAIN-002``) become scalars under ``traingate/``; a violation or
warning becomes a count per invariant plus its message; the end of the run records ``ok``
and each invariant's status. Each tracker's package is imported only by its bridge.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from traingate.runtime.events import GuardEvent

PREFIX = "traingate/"


def scalars(event: GuardEvent) -> dict[str, float]:
    """A ``metrics`` event's values, named for a tracker (``traingate/limit/INV-…``)."""
    return {f"{PREFIX}{k}": float(v) for k, v in event.data.items() if k != "point"}


def message(event: GuardEvent) -> str:
    """One line for a violation or warning event: id, where, observed vs limit, detail."""
    d = event.data
    where = f" at step {event.step}" if event.step is not None else ""
    return f"{d.get('invariant')}{where}: {d.get('detail', '')}"


def statuses(event: GuardEvent) -> dict[str, str]:
    """An ``end`` event's status per invariant (``pass``, ``fail``, ``not_evaluated``, …)."""
    return {inv: tally["status"] for inv, tally in event.data.get("tallies", {}).items()}


class TensorBoardBridge:
    """Writes the Guard's events to a ``torch.utils.tensorboard.SummaryWriter``.

    Args:
        writer: a ``SummaryWriter``, or a log dir to open one in (closed at the run's end).
    """

    def __init__(self, writer: Any) -> None:
        if isinstance(writer, str | Path):
            from torch.utils.tensorboard import SummaryWriter

            writer, self._owned = SummaryWriter(str(writer)), True
        else:
            self._owned = False
        self.writer = writer
        self.counts: Counter[str] = Counter()

    def __call__(self, event: GuardEvent) -> None:
        step = event.step or 0
        if event.kind == "metrics":
            for name, value in scalars(event).items():
                self.writer.add_scalar(name, value, step)
        elif event.kind in ("violation", "warning"):
            inv = str(event.data.get("invariant"))
            self.counts[inv] += 1
            self.writer.add_scalar(f"{PREFIX}violations/{inv}", self.counts[inv], step)
            self.writer.add_text(f"{PREFIX}{event.kind}", message(event), step)
        elif event.kind == "end":
            table = "\n".join(f"- {inv}: {status}" for inv, status in statuses(event).items())
            ok = "ok" if event.data.get("ok") else "NOT ok"
            self.writer.add_text(f"{PREFIX}verdict", f"{ok}\n\n{table}", step)
            self.writer.flush()
            if self._owned:
                self.writer.close()


class MLflowBridge:
    """Logs the Guard's events to an MLflow run: scalars as metrics, the verdict as tags.

    Args:
        run_id: the run to log to; ``None`` logs to the active run (``mlflow.start_run``).
    """

    def __init__(self, run_id: str | None = None) -> None:
        import mlflow

        self.client = mlflow.MlflowClient()
        active = mlflow.active_run()
        if run_id is None and active is None:
            raise ValueError("MLflowBridge needs a run_id or an active run (mlflow.start_run)")
        self.run_id = run_id or active.info.run_id  # type: ignore[union-attr]
        self.counts: Counter[str] = Counter()

    def __call__(self, event: GuardEvent) -> None:
        from mlflow.entities import Metric, RunTag

        step = event.step or 0
        if event.kind == "metrics":
            stamp = _millis()
            metrics = [Metric(k, v, stamp, step) for k, v in scalars(event).items()]
            self.client.log_batch(self.run_id, metrics=metrics)
        elif event.kind in ("violation", "warning"):
            inv = str(event.data.get("invariant"))
            self.counts[inv] += 1
            self.client.log_metric(
                self.run_id, f"{PREFIX}violations/{inv}", self.counts[inv], step=step
            )
            self.client.set_tag(self.run_id, f"{PREFIX}{event.kind}/{inv}", message(event))
        elif event.kind == "end":
            tags = [RunTag(f"{PREFIX}status/{inv}", s) for inv, s in statuses(event).items()]
            tags.append(RunTag(f"{PREFIX}ok", str(bool(event.data.get("ok"))).lower()))
            self.client.log_batch(self.run_id, tags=tags)


class WandbBridge:
    """Logs the Guard's events to a W&B run against its own x-axis, ``traingate/step``
    (so the loop's own ``wandb.log`` steps are never contradicted); the verdict goes to the
    run's summary.

    Args:
        run: a ``wandb`` run; ``None`` uses ``wandb.run`` (after ``wandb.init``).
    """

    def __init__(self, run: Any = None) -> None:
        if run is None:
            import wandb

            run = wandb.run
        if run is None:
            raise ValueError("WandbBridge needs a run or an active one (wandb.init)")
        self.run = run
        self.run.define_metric(f"{PREFIX}step")
        self.run.define_metric(f"{PREFIX}*", step_metric=f"{PREFIX}step")
        self.counts: Counter[str] = Counter()

    def __call__(self, event: GuardEvent) -> None:
        step = {f"{PREFIX}step": event.step or 0}
        if event.kind == "metrics":
            self.run.log({**scalars(event), **step})
        elif event.kind in ("violation", "warning"):
            inv = str(event.data.get("invariant"))
            self.counts[inv] += 1
            self.run.log({f"{PREFIX}violations/{inv}": self.counts[inv], **step})
            self.run.summary[f"{PREFIX}{event.kind}/{inv}"] = message(event)
        elif event.kind == "end":
            for inv, status in statuses(event).items():
                self.run.summary[f"{PREFIX}status/{inv}"] = status
            self.run.summary[f"{PREFIX}ok"] = bool(event.data.get("ok"))


def _millis() -> int:
    import time

    return int(time.time() * 1000)
