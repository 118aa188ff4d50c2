"""The runtime checker: routes a training loop's observations to each invariant's check.

The loop calls ``guard.step(...)`` after backward (before ``optimizer.step()``),
``guard.validation(...)`` after each evaluation, and leaves the ``with`` block at the end::

    with Guard(regime=FromScratch(vocab_size), run_dir="runs/x") as guard:
        for step, batch in enumerate(loader):
            loss = model(batch).loss; loss.backward()
            guard.step(step, loss=loss, grad_norm=clip_grad_norm_(model.parameters(), 1.0))
            optimizer.step(); optimizer.zero_grad()

Each step moves the step's device scalars to the host in ONE transfer (the only sync the
Guard adds); a non-finite loss or gradient raises before the optimizer can apply it. Under
torch.distributed each evaluation point all-reduces one violation flag per invariant
("any rank violated" wins), so every rank raises the same violation at the same step.
A violated ``on_violation: stop`` invariant raises nothing: it sets ``guard.should_stop``
(and ``guard.stop_reason``) on every rank, and the loop ends early and cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from traingate.contract.regime import Finetune, FromScratch
from traingate.runtime import described, planning
from traingate.runtime.binding import Tracked, bind, load_contracts
from traingate.runtime.distributed import Ranks
from traingate.runtime.events import EventStream, GuardEvent, Listener
from traingate.runtime.evidence import MetricsBuffer, component_names, jsonable, require_parquet
from traingate.runtime.host import is_tensor, scalar, to_host, total_grad_norm
from traingate.runtime.planning import Unevaluable, Unsupplied, announce, unevaluable, unsupplied
from traingate.runtime.reference import (
    SUPPLIED,
    Reference,
    reference_of,
    reference_steps,
    unreferenced,
)
from traingate.runtime.rundir import open_evidence
from traingate.runtime.stopping import StopsEarly
from traingate.runtime.verdict import (
    SCHEMA_VERSION,
    TRAINGATE_VERSION,
    GateRecord,
    InvariantRecord,
    Verdict,
    failures,
    gate_status,
    write_verdict,
)
from traingate.runtime.violation import InvariantViolation, ViolationRecord

__all__ = ["Guard", "GuardEvent", "InvariantViolation", "Listener", "Tracked", "ViolationRecord"]

log = logging.getLogger("traingate")


class Guard(StopsEarly):
    """Enforces contracts inside a training loop and records the evidence.

    Args:
        contracts: contract files or folders (``traingate.shipped("pretrain")``, the
            default; with ``only`` and no contracts, the shipped contracts defining those ids).
        regime: ``Finetune()`` or ``FromScratch(vocab_size)``; regime-keyed thresholds use it.
        params: run parameters that formulas name (checked against the contracts'
            declared types and bounds).
        run_dir: where ``evidence.jsonl``, ``verdict.json`` and ``metrics.parquet`` go
            (rank 0 writes); ``None`` keeps everything in memory.
        only: restrict to these invariant ids (default: every invariant in the contracts).
        summary_every: write a summary event every N steps.
        config: the loop's own settings that a resume may not change (lr, warm-up, data…),
            recorded in the start event beside the contracts, regime and params.
        resume: continue the run ``run_dir`` already holds (then call
            :meth:`load_state_dict`); without it a run dir holding a run is refused.
        allow_config_change: let a resume change the contracts, regime, params or
            selection (recorded as a ``config_change`` event); refused otherwise.
        max_steps, max_validations: the run's plan, when the loop knows it. An invariant
            the plan cannot evaluate (a 100-loss window in a 60-step run) is named at start
            in an :class:`UnevaluableWarning` and an ``unevaluable`` evidence event, and
            listed in :attr:`unevaluable`, instead of surfacing as "never evaluated" at the
            verdict.
        supplies: the observations this loop (or integration) ever hands the Guard; an
            invariant needing another is named at start the same way.
        reference: a reference run dir (or :class:`Reference`) that ``reproducible``
            invariants compare the first steps with at the final point (none: unevaluable).
    """

    def __init__(
        self,
        contracts: Sequence[str | Path] | None = None,
        *,
        regime: Finetune | FromScratch | None = None,
        params: Mapping[str, float] | None = None,
        run_dir: str | Path | None = None,
        only: Sequence[str] | None = None,
        summary_every: int = 100,
        config: Mapping[str, Any] | None = None,
        resume: bool = False,
        allow_config_change: bool = False,
        max_steps: int | None = None,
        max_validations: int | None = None,
        listeners: Sequence[Listener] = (),
        supplies: Collection[str] | None = None,
        reference: str | Path | Reference | None = None,
    ) -> None:
        self.config = dict(config or {})
        self.regime = regime or Finetune()
        self.params = dict(params or {})
        self.reference = reference_of(reference)  # read now: a bad one fails before any step
        self.contracts, self.contract_sha256 = load_contracts(contracts, only)
        self.tracked = bind(self.contracts, self.regime, self.params, only)
        self.only = list(only) if only is not None else None
        self.by_point: dict[str, list[Tracked]] = {"step": [], "validation": [], "final": []}
        for t in self.tracked:
            if not t.unbound:  # a threshold naming a run parameter not given: never judged
                self.by_point[t.invariant.at].append(t)
        self._needs_grad_norm = any(  # needed, one of several, or demanded (metrics_present)
            "grad_norm" in t.needs | t.check.observes_any() | t.check.demands()
            for t in self.by_point["step"]
        )
        self.summary_every = summary_every
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ranks = Ranks.current()
        self.rank, self.world = self.ranks.rank, self.ranks.world
        self.evidence = None
        if self.run_dir is not None and self.rank == 0:
            require_parquet()
            self.evidence = open_evidence(
                self.run_dir,
                self._identity(),
                resume=resume,
                allow_config_change=allow_config_change,
            )
        self.metrics = MetricsBuffer()
        self.last_step: int | None = None
        self.epoch: int | None = None
        self.aborted_by: ViolationRecord | None = None
        self.interrupted: str | None = None  # set by a loop stopped early (e.g. by a signal)
        self.early_stop = None  # the first violated ``stop`` invariant (see StopsEarly)
        self._limits: dict[str, float] = {}  # last limit written to metrics, per invariant
        self.closed: Verdict | None = None  # the verdict close() wrote
        self.events = EventStream(self.evidence, listeners, active=self.rank == 0)
        self.events.write(
            "start",
            **self._identity(),
            invariants=[t.invariant.id for t in self.tracked],
            definitions=described.definitions(self.contracts, self.tracked),
            gates=described.gates(self.contracts),
            excluded=described.excluded(self.contracts, self.regime),
            reference=self.reference.identity() if self.reference else None,
        )
        self.unevaluable: list[Unevaluable | Unsupplied] = [
            *unevaluable(self.tracked, max_steps=max_steps, max_validations=max_validations),
            *(unsupplied(self.tracked, {*supplies, *SUPPLIED}) if supplies is not None else []),
            *(unreferenced(self.tracked) if self.reference is None else []),
            *planning.unbound(self.tracked),
        ]
        if self.rank == 0:
            announce(self.unevaluable, self.events, max_steps, max_validations)

    def _identity(self) -> dict[str, Any]:
        """What run this is: contracts@version, regime, params, selection, world size."""
        return {
            "contracts": {c.contract: c.version for c in self.contracts},
            "contract_sha256": self.contract_sha256,
            "regime": self.regime.model_dump(),
            "params": self.params,
            "only": self.only,
            "world_size": self.world,
            "config": self.config,
        }

    def on_event(self, listener: Listener) -> Listener:
        """Hand every later :class:`GuardEvent` to ``listener`` (rank 0); usable as a
        decorator. Events from the constructor go to ``Guard(listeners=[...])``."""
        self.events.add(listener)
        return listener

    def record_event(self, kind: str, **fields: Any) -> None:
        """Write the loop's own evidence event (e.g. ``data_cycled``): :meth:`EventStream.own`."""
        self.events.own(kind, **fields)

    def _record(
        self, point: str, step: int | None, epoch: int | None, values: Mapping[str, float]
    ) -> None:
        """Keep values for ``metrics.parquet`` and tell the listeners."""
        self.metrics.add(point, step, epoch, values)
        self.events.metrics(point, step, epoch, values)

    # -- observation points ----------------------------------------------------------------

    def step(
        self,
        step: int,
        *,
        loss: Any,
        grad_norm: Any = None,
        model: Any = None,
        components: Mapping[str, Any] | None = None,
        weights: Mapping[str, Any] | None = None,
        **metrics: Any,
    ) -> dict[str, Any]:
        """Observe one optimisation step; call after backward, before ``optimizer.step()``.

        ``loss``, ``grad_norm``, ``components`` and extra metrics may be device tensors:
        they move to the host together in one transfer. Pass ``model`` instead of
        ``grad_norm`` to have the total gradient norm computed (if a step invariant needs
        it). Returns the host-side values (floats): the loop logs them without a sync.
        """
        if grad_norm is None and model is not None and self._needs_grad_norm:
            grad_norm = total_grad_norm(model.parameters())
        # one transfer: the device values, then components, then tensor metrics (tokens/s)
        moved = [loss] if grad_norm is None else [loss, grad_norm]
        n = len(moved)
        comp_names = tuple(components) if components else ()
        moved.extend(components[k] for k in comp_names)  # type: ignore[index]
        extra = [k for k, v in metrics.items() if type(v) is not float and is_tensor(v)]
        moved.extend(metrics[k] for k in extra)
        values = to_host(moved)
        # obs: what the checks see; flat: its float values, as metrics.parquet records them
        obs: dict[str, Any] = {"loss": values[0]}
        if grad_norm is not None:
            obs["grad_norm"] = values[1]
        flat: dict[str, float] = dict(obs)
        if comp_names:
            at = values[n : n + len(comp_names)]  # the tensor metrics follow them
            comps = obs["components"] = dict(zip(comp_names, at, strict=True))
        if weights:
            obs["weights"] = {k: float(v) for k, v in weights.items()}
        if extra:
            metrics.update(zip(extra, values[len(values) - len(extra) :], strict=True))
        for k, v in metrics.items():
            obs[k] = flat[k] = v if type(v) is float else scalar(v)
        obs["step"] = step
        if isinstance(step, float):
            flat["step"] = step
        self.last_step = step
        if comp_names:
            flat.update(zip(component_names(comp_names), comps.values(), strict=True))
        self._record("step", step, self.epoch, flat)
        self._evaluate("step", obs, step, self.epoch)
        if self.summary_every and step % self.summary_every == 0:
            self.events.write("summary", step=step, tallies=self._tallies())
        return obs

    def validation(
        self, epoch: int, *, val_loss: Any = None, step: int | None = None, **observations: Any
    ) -> None:
        """Observe one validation pass (epoch index from 0), with whatever it produced:
        ``val_loss``, ``val_components``, ``predictions``, ``labels``, ``probabilities``,
        ``embeddings``, ``groups``, or extra scalar metrics."""
        self.epoch = epoch
        if step is not None:
            self.last_step = step
        obs: dict[str, Any] = {"epoch": epoch, "step": self.last_step}
        if val_loss is not None:
            obs["val_loss"] = scalar(val_loss)
        for key, value in observations.items():
            if key == "val_components" and value is not None:
                obs[key] = {k: scalar(v) for k, v in value.items()}
            elif is_tensor(value) and getattr(value, "ndim", 0) > 0:
                obs[key] = value.detach()
            elif value is not None:
                obs[key] = scalar(value)
        obs = self.ranks.gather(
            obs, {f for t in self.by_point["validation"] for f in t.check.gather}
        )
        flat = {k: v for k, v in obs.items() if isinstance(v, float)}
        flat.update({f"val_component/{k}": v for k, v in obs.get("val_components", {}).items()})
        self._record("validation", self.last_step, epoch, flat)
        self._evaluate("validation", obs, self.last_step, epoch)

    def final(self, **metrics: Any) -> None:
        """Observe the end of training (final-point invariants run here)."""
        obs = {
            "step": self.last_step,
            "epoch": self.epoch,
            **{k: scalar(v) for k, v in metrics.items()},
        }
        self._record(
            "final",
            self.last_step,
            self.epoch,
            {k: v for k, v in obs.items() if isinstance(v, float)},
        )
        if self.rank == 0:  # ``reproducible``: rank 0's steps, as a reference run records them
            obs.update(reference_steps(self.reference, self.metrics))
        self._evaluate("final", obs, self.last_step, self.epoch)

    # -- deciding --------------------------------------------------------------------------

    def _evaluate(
        self, point: str, obs: Mapping[str, Any], step: int | None, epoch: int | None
    ) -> None:
        tracked = self.by_point[point]
        if not tracked:
            return
        if self.ranks.single:  # decided and settled together; a pass stays a Quick, not built
            rank = self.rank
            judged = [(t, t.take(obs, step, epoch), rank) for t in tracked]
        else:  # a pass here may be another rank's failure: build it all, agree, then settle
            decisions = self.ranks.reduce([t.observe(obs) for t in tracked])
            judged = [
                (t, t.settle(d, step, epoch), r)
                for t, (d, r) in zip(tracked, decisions, strict=True)
            ]
        limits = self._limits
        first_abort: ViolationRecord | None = None
        for t, decision, rank in judged:
            if decision is None:
                continue
            quick = type(decision) is tuple
            limit = decision[1] if quick else decision.limit  # type: ignore[index, union-attr]
            if limit is not None and limits.get(t.invariant.id) != limit:
                # record a limit when it changes, so a report can draw it where it applied
                limits[t.invariant.id] = limit
                self._record(point, step, epoch, {t.limit_name: limit})
            if quick or decision.ok:  # type: ignore[union-attr]
                continue
            record = t.violation(decision, point, step, epoch, rank)  # type: ignore[arg-type]
            self.tell_failure(record)
            if record.on_violation == "abort" and first_abort is None:
                first_abort = record
        if first_abort is not None:
            self.aborted_by = first_abort
            raise InvariantViolation(first_abort)

    def tell_failure(self, record: ViolationRecord) -> None:
        """Write a violation's event (``violation`` for an abort, else ``warning``), then
        log a ``warn`` one or stop early on a ``stop`` one (an abort is the caller's raise).
        A batch replay (``contracts audit``) that tallied its rows itself tells each here."""
        action = record.on_violation
        self.events.write("violation" if action == "abort" else "warning", **record.to_dict())
        if action == "warn":
            log.warning("traingate: %s", record.message())
        elif action == "stop":
            self._stop_early(record)

    # -- results ---------------------------------------------------------------------------

    def _tallies(self, kept: bool = False) -> dict[str, Any]:
        """Each invariant's status and counts (``kept``: with its worst and last evaluation,
        as the end event records them, so the whole verdict can be derived from evidence)."""
        return {
            t.invariant.id: {
                "status": t.status,
                "evaluations": t.evaluations,
                "violations": t.violations,
                **({"worst": t.worst, "last": t.last} if kept else {}),
            }
            for t in self.tracked
        }

    def verdict(self) -> Verdict:
        """The run's verdict so far (:meth:`judge` without a crash)."""
        return self.judge()

    def judge(self, crashed: str | None = None) -> Verdict:
        """The run's verdict: every invariant's status, count and worst observation, the
        gates, and whether the run may ship (``crashed`` names the error that ended it)."""
        ship_blocking = described.ship_blocking(self.contracts)
        why = planning.reasons(self.unevaluable)
        invariants = {
            t.invariant.id: InvariantRecord(
                status=t.status,
                contract=t.contract.ref,
                title=t.invariant.title,
                check=t.invariant.check,
                at=t.invariant.at,
                on_violation=t.invariant.on_violation,
                ship_blocking=t.invariant.id in ship_blocking,
                evaluations=t.evaluations,
                violations=t.violations,
                worst=t.worst,
                last=t.last,
                unevaluable=why.get(t.invariant.id) if not t.evaluations else None,
            )
            for t in self.tracked
        }
        statuses = {inv_id: record.status for inv_id, record in invariants.items()}
        excluded = described.excluded(self.contracts, self.regime)
        gates = {
            gate_id: GateRecord(
                status=gate_status(g["requires"], g["ship_blocking"], statuses, excluded),
                **g,
            )
            for gate_id, g in described.gates(self.contracts).items()
        }
        verdict = Verdict(
            schema_version=SCHEMA_VERSION,
            traingate_version=TRAINGATE_VERSION,
            **self._identity(),
            excluded=excluded,
            interrupted=self.interrupted,
            crashed=crashed,
            evaluations=sum(t.evaluations for t in self.tracked),
            aborted_by=self.aborted_by.to_dict() if self.aborted_by else None,
            early_stop=self.early_stop,
            last_step=self.last_step,
            last_epoch=self.epoch,
            invariants=invariants,
            gates=gates,
        )
        verdict.ok = not failures(verdict)
        return verdict

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the Guard exactly (checkpoint it with the model).

        With a run dir it also writes ``metrics.parquet`` (rank 0) and records its length,
        so a resumed run's metrics keep the history up to this checkpoint and nothing after.
        """
        if self.evidence and self.run_dir is not None and len(self.metrics):
            self.metrics.write(self.run_dir)
        return {
            "last_step": self.last_step,
            "epoch": self.epoch,
            "metrics_rows": len(self.metrics),
            "limits": dict(self._limits),
            "early_stop": self.early_stop,
            "checks": {t.invariant.id: t.check.state_dict() for t in self.tracked},
            "tallies": {
                t.invariant.id: {
                    "evaluations": t.evaluations,
                    "violations": t.violations,
                    "worst": jsonable(t.worst),
                    "worst_excess": jsonable(t.worst_excess),
                    "last": jsonable(t.last),
                }
                for t in self.tracked
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s state; the metrics written up to it are read back."""
        self.last_step = state["last_step"]
        self.epoch = state["epoch"]
        self._limits = dict(state.get("limits", {}))
        self.early_stop = state.get("early_stop")
        rows = int(state.get("metrics_rows", 0))
        if self.evidence and self.run_dir is not None and rows:
            self.metrics = MetricsBuffer.read(self.run_dir, rows)
        for t in self.tracked:
            if t.invariant.id in state["checks"]:
                t.check.load_state_dict(state["checks"][t.invariant.id])
            tally = state["tallies"].get(t.invariant.id)
            if tally:
                t.evaluations, t.violations = tally["evaluations"], tally["violations"]
                t.worst, t.last = tally["worst"], tally["last"]
                t.worst_excess = float(tally["worst_excess"])
        restored = {
            t.invariant.id: {"evaluations": t.evaluations, "violations": t.violations}
            for t in self.tracked
        }
        self.events.write(
            "resume",
            step=self.last_step,
            epoch=self.epoch,
            metrics_rows=len(self.metrics),
            tallies=restored,
            early_stop=self.early_stop,
        )

    def close(self, error: BaseException | None = None) -> Verdict:
        """Write the verdict and metrics (rank 0), close the evidence log; return the
        verdict (``error`` is what ended the run, if anything did). Closing again returns
        the verdict the first close wrote."""
        if self.closed is not None:
            return self.closed
        crashed = None
        if error is not None and not isinstance(error, InvariantViolation):
            crashed = f"{type(error).__name__}: {error}"
        verdict = self.closed = self.judge(crashed)
        self.events.write(
            "end",
            ok=verdict.ok,
            crashed=crashed,
            interrupted=self.interrupted,
            aborted_by=self.aborted_by.invariant_id if self.aborted_by else None,
            early_stop=self.early_stop,
            last_step=self.last_step,
            last_epoch=self.epoch,
            tallies=self._tallies(kept=True),
        )
        if self.evidence and self.run_dir is not None:
            self.evidence.close()
            verdict.evidence_head = self.evidence.head
            write_verdict(self.run_dir, verdict)
            if len(self.metrics):
                self.metrics.write(self.run_dir)
        return verdict

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(exc)
