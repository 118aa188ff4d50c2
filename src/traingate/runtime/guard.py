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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traingate.checks import REGISTRY, Check, CheckContext, Decision
from traingate.contract.regime import REGIME_NAMES, Finetune, FromScratch
from traingate.contract.schema import Contract, Invariant
from traingate.contract.shipped import load_valid, shipped_contracts_dir
from traingate.contract.thresholds import iter_formulas
from traingate.runtime.evidence import EvidenceLog, MetricsBuffer, jsonable, write_verdict

log = logging.getLogger("traingate")

_EXCESS_SIGN = {"<=": 1.0, "<": 1.0, ">=": -1.0, ">": -1.0}


class InvariantViolation(RuntimeError):
    """An ``abort`` invariant failed: everything needed to act on it without a debugger."""

    def __init__(self, record: ViolationRecord) -> None:
        self.record = record
        self.invariant_id = record.invariant_id
        self.contract = record.contract
        self.observed = record.decision.observed
        self.limit = record.decision.limit
        self.formula = record.decision.formula
        self.evaluated = record.decision.evaluated
        self.step = record.step
        self.epoch = record.epoch
        self.rank = record.rank
        self.hint = record.hint
        super().__init__(record.message())

    def __reduce__(self) -> tuple[type[InvariantViolation], tuple[ViolationRecord]]:
        return (type(self), (self.record,))


@dataclass(frozen=True)
class ViolationRecord:
    """One failed evaluation: which invariant, where in the run, and the decision."""

    invariant_id: str
    contract: str
    title: str
    at: str
    on_violation: str
    decision: Decision
    step: int | None
    epoch: int | None
    rank: int

    @property
    def hint(self) -> str:
        return self.decision.hint

    def message(self) -> str:
        d = self.decision
        where = ", ".join(
            part
            for part in (
                f"step {self.step}" if self.step is not None else "",
                f"epoch {self.epoch}" if self.epoch is not None else "",
                f"rank {self.rank}",
            )
            if part
        )
        need = f"observed {d.observed:.6g}"
        if d.limit is not None:
            need += f", must be {d.comparison} {d.limit:.6g}"
        elif d.comparison:
            need += f", must be {d.comparison}"
        limit = f"; limit {d.formula} → {d.evaluated}" if d.formula else ""
        hint = f"\n  hint: {d.hint}" if d.hint else ""
        return (
            f"{self.invariant_id} {self.title} ({self.contract}) violated at {self.at}, {where}: "
            f"{d.detail} [{need}{limit}]{hint}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "invariant": self.invariant_id,
            "contract": self.contract,
            "at": self.at,
            "on_violation": self.on_violation,
            "observed": d.observed,
            "limit": d.limit,
            "comparison": d.comparison,
            "formula": d.formula,
            "evaluated": d.evaluated,
            "detail": d.detail,
            "hint": d.hint,
            "metrics": dict(d.metrics),
            "step": self.step,
            "epoch": self.epoch,
            "rank": self.rank,
        }


@dataclass
class Tracked:
    """An invariant bound to its check, with the tallies the verdict reports."""

    invariant: Invariant
    contract: Contract
    check: Check[Any]
    evaluations: int = 0
    violations: int = 0
    worst: dict[str, Any] | None = None
    worst_excess: float = -math.inf
    last: dict[str, Any] | None = field(default=None)

    def record(self, decision: Decision, step: int | None, epoch: int | None) -> None:
        self.evaluations += 1
        excess = _excess(decision)
        entry = {
            "observed": decision.observed,
            "limit": decision.limit,
            "comparison": decision.comparison,
            "ok": decision.ok,
            "detail": decision.detail,
            "step": step,
            "epoch": epoch,
            "metrics": dict(decision.metrics),
        }
        self.last = entry
        if not decision.ok:
            self.violations += 1
        if self.worst is None or excess > self.worst_excess:
            self.worst, self.worst_excess = entry, excess

    @property
    def status(self) -> str:
        if self.evaluations == 0:
            return "not_evaluated"
        if self.violations:
            return "fail" if self.invariant.on_violation == "abort" else "warn"
        return "pass"


def _excess(d: Decision) -> float:
    """How far past its limit a decision is (positive = violated), for 'worst observation'."""
    if d.limit is None or d.comparison not in _EXCESS_SIGN:
        return math.inf if not d.ok else -math.inf
    if not math.isfinite(d.observed):
        return math.inf
    return _EXCESS_SIGN[d.comparison] * (d.observed - d.limit)


def _dist() -> tuple[Any, int, int]:
    """(torch.distributed or None, rank, world size) without importing torch needlessly."""
    import sys

    if "torch" not in sys.modules:
        return None, 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


class Guard:
    """Enforces contracts inside a training loop and records the evidence.

    Args:
        contracts: contract files or folders (default: the shipped contracts).
        regime: ``Finetune()`` or ``FromScratch(vocab_size)``; regime-keyed thresholds use it.
        params: run parameters that formulas name (checked against the contracts'
            declared types and bounds).
        run_dir: where ``evidence.jsonl``, ``verdict.json`` and ``metrics.parquet`` go
            (rank 0 writes); ``None`` keeps everything in memory.
        only: restrict to these invariant ids (default: every invariant in the contracts).
        summary_every: write a summary event every N steps.
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
    ) -> None:
        self.regime = regime or Finetune()
        self.params = dict(params or {})
        self.contracts = _load_contracts(contracts)
        self.tracked = _bind(self.contracts, self.regime, self.params, only)
        self.only = list(only) if only is not None else None
        self.by_point: dict[str, list[Tracked]] = {"step": [], "validation": [], "final": []}
        for t in self.tracked:
            self.by_point[t.invariant.at].append(t)
        self._needs_grad_norm = any(
            "grad_norm" in t.check.observes() for t in self.by_point["step"]
        )
        self.summary_every = summary_every
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._dist, self.rank, self.world = _dist()
        writes = self.run_dir is not None and self.rank == 0
        self.evidence = EvidenceLog(self.run_dir) if writes and self.run_dir else None
        self.metrics = MetricsBuffer()
        self.last_step: int | None = None
        self.epoch: int | None = None
        self.aborted_by: ViolationRecord | None = None
        self.interrupted: str | None = None  # set by a loop stopped early (e.g. by a signal)
        self._limits: dict[str, float] = {}  # last limit written to metrics, per invariant
        self.closed = False
        if self.evidence:
            self.evidence.write("start", **self._identity())

    def _identity(self) -> dict[str, Any]:
        return {
            "contracts": {c.contract: c.version for c in self.contracts},
            "regime": self.regime.model_dump(),
            "params": self.params,
            "invariants": [t.invariant.id for t in self.tracked],
            "only": self.only,
            "world_size": self.world,
        }

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

        ``loss``, ``grad_norm`` and ``components`` may be device tensors: they are moved to
        the host together in one transfer. Pass ``model`` instead of ``grad_norm`` to have
        the total gradient norm computed (only if a step invariant needs it). Returns the
        host-side values (floats) so the loop can log them without another sync.
        """
        if grad_norm is None and model is not None and self._needs_grad_norm:
            grad_norm = _total_grad_norm(model)
        names = ["loss"] + (["grad_norm"] if grad_norm is not None else [])
        comp_names = list(components or {})
        device_values = [loss] + ([grad_norm] if grad_norm is not None else [])
        values = _to_host(
            device_values + [components[n] for n in comp_names] if components else device_values
        )
        obs: dict[str, Any] = dict(zip(names, values[: len(names)], strict=True))
        if comp_names:
            obs["components"] = dict(zip(comp_names, values[len(names) :], strict=True))
        if weights:
            obs["weights"] = {k: float(v) for k, v in weights.items()}
        scalars = {k: _scalar(v) for k, v in metrics.items()}
        obs.update(scalars)
        obs["step"] = step
        self.last_step = step
        flat = {k: v for k, v in obs.items() if isinstance(v, float)}
        flat.update({f"component/{k}": v for k, v in obs.get("components", {}).items()})
        self.metrics.add("step", step, self.epoch, flat)
        self._evaluate("step", obs, step, self.epoch)
        if self.evidence and self.summary_every and step % self.summary_every == 0:
            self.evidence.write("summary", step=step, **self._tallies())
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
            obs["val_loss"] = _scalar(val_loss)
        for key, value in observations.items():
            if key == "val_components" and value is not None:
                obs[key] = {k: _scalar(v) for k, v in value.items()}
            elif _is_tensor(value) and getattr(value, "ndim", 0) > 0:
                obs[key] = value.detach()
            elif value is not None:
                obs[key] = _scalar(value)
        obs = self._gather_validation(obs)
        flat = {k: v for k, v in obs.items() if isinstance(v, float)}
        flat.update({f"val_component/{k}": v for k, v in obs.get("val_components", {}).items()})
        self.metrics.add("validation", self.last_step, epoch, flat)
        self._evaluate("validation", obs, self.last_step, epoch)

    def final(self, **metrics: Any) -> None:
        """Observe the end of training (final-point invariants run here)."""
        obs = {
            "step": self.last_step,
            "epoch": self.epoch,
            **{k: _scalar(v) for k, v in metrics.items()},
        }
        self.metrics.add(
            "final",
            self.last_step,
            self.epoch,
            {k: v for k, v in obs.items() if isinstance(v, float)},
        )
        self._evaluate("final", obs, self.last_step, self.epoch)

    # -- deciding --------------------------------------------------------------------------

    def _evaluate(
        self, point: str, obs: Mapping[str, Any], step: int | None, epoch: int | None
    ) -> None:
        tracked = self.by_point[point]
        if not tracked:
            return
        decisions: list[Decision | None] = []
        for t in tracked:
            if not t.check.observes().issubset(obs.keys()):
                decisions.append(None)
                continue
            t.check.update(obs)
            decisions.append(t.check.verdict())
        reduced = self._reduce(decisions)
        first_abort: ViolationRecord | None = None
        for t, (decision, rank) in zip(tracked, reduced, strict=True):
            if decision is None:
                continue
            t.record(decision, step, epoch)
            if decision.limit is not None and self._limits.get(t.invariant.id) != decision.limit:
                # record a limit when it changes, so a report can draw it where it applied
                self._limits[t.invariant.id] = decision.limit
                self.metrics.add(point, step, epoch, {f"limit/{t.invariant.id}": decision.limit})
            if decision.ok:
                continue
            record = ViolationRecord(
                t.invariant.id,
                t.contract.ref,
                t.invariant.title,
                point,
                t.invariant.on_violation,
                decision if not t.invariant.hint else _with_hint(decision, t.invariant.hint),
                step,
                epoch,
                rank,
            )
            if self.evidence:
                self.evidence.write(
                    "violation" if record.on_violation == "abort" else "warning", **record.to_dict()
                )
            if record.on_violation == "warn":
                log.warning("traingate: %s", record.message())
            elif first_abort is None:
                first_abort = record
        if first_abort is not None:
            self.aborted_by = first_abort
            raise InvariantViolation(first_abort)

    def _reduce(self, decisions: list[Decision | None]) -> list[tuple[Decision | None, int]]:
        """Across ranks: an invariant violated on any rank is violated on all (same decision,
        attributed to the lowest rank that violated it)."""
        own = [(d, self.rank) for d in decisions]
        if self._dist is None or self.world == 1:
            return own
        import torch

        dist = self._dist
        flags = [0.0 if d is None or d.ok else 1.0 for d in decisions]
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else "cpu"
        )
        tensor = torch.tensor(flags, dtype=torch.float32, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        if not any(tensor.tolist()):
            return own
        gathered: list[list[Decision | None]] = [None] * self.world  # type: ignore[list-item]
        dist.all_gather_object(gathered, decisions)
        reduced: list[tuple[Decision | None, int]] = []
        for i, mine in enumerate(own):
            failing = [
                (g[i], r) for r, g in enumerate(gathered) if g[i] is not None and not g[i].ok
            ]
            reduced.append(failing[0] if failing else mine)
        return reduced

    def _gather_validation(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Concatenate the fields validation checks declare in ``gather`` across ranks."""
        if self._dist is None or self.world == 1:
            return obs
        import torch

        fields = sorted(
            {f for t in self.by_point["validation"] for f in t.check.gather if f in obs}
        )
        if not fields:
            return obs
        local = {f: obs[f].cpu() for f in fields}
        gathered: list[dict[str, Any]] = [None] * self.world  # type: ignore[list-item]
        self._dist.all_gather_object(gathered, local)
        out = dict(obs)
        for f in fields:
            out[f] = torch.cat([g[f] for g in gathered])
        return out

    # -- results ---------------------------------------------------------------------------

    def _tallies(self) -> dict[str, Any]:
        return {
            t.invariant.id: {
                "status": t.status,
                "evaluations": t.evaluations,
                "violations": t.violations,
            }
            for t in self.tracked
        }

    def verdict(self) -> dict[str, Any]:
        """The run's verdict: every invariant's status, count and worst observation."""
        ship_blocking = {
            req for c in self.contracts for g in c.gates if g.ship_blocking for req in g.requires
        }
        invariants = {
            t.invariant.id: {
                "status": t.status,
                "contract": t.contract.ref,
                "title": t.invariant.title,
                "check": t.invariant.check,
                "at": t.invariant.at,
                "on_violation": t.invariant.on_violation,
                "ship_blocking": t.invariant.id in ship_blocking,
                "evaluations": t.evaluations,
                "violations": t.violations,
                "worst": t.worst,
                "last": t.last,
            }
            for t in self.tracked
        }
        gates = {}
        for c in self.contracts:
            for g in c.gates:
                statuses = [invariants[r]["status"] for r in g.requires if r in invariants]
                if statuses:
                    blocked = "fail" in statuses or (g.ship_blocking and "warn" in statuses)
                    status = (
                        "fail"
                        if blocked
                        else "not_evaluated"
                        if "not_evaluated" in statuses
                        else "pass"
                    )
                else:  # no required invariant runs here: say why
                    status = (
                        "not_applicable" if self._not_applicable(g.requires) else "not_selected"
                    )
                gates[g.id] = {
                    "status": status,
                    "contract": c.ref,
                    "requires": g.requires,
                    "ship_blocking": g.ship_blocking,
                }
        evaluated = sum(t.evaluations for t in self.tracked)
        blocking_bad = [
            i
            for i, v in invariants.items()
            # warn keeps the run going, but a ship-blocking gate still does not ship on it
            if v["ship_blocking"] and v["status"] in ("fail", "warn", "not_evaluated")
        ]
        return {
            **self._identity(),
            "ok": evaluated > 0
            and not blocking_bad
            and self.aborted_by is None
            and not self.interrupted,
            "interrupted": self.interrupted,
            "evaluations": evaluated,
            "aborted_by": self.aborted_by.to_dict() if self.aborted_by else None,
            "last_step": self.last_step,
            "last_epoch": self.epoch,
            "invariants": invariants,
            "gates": gates,
        }

    def _not_applicable(self, ids: Sequence[str]) -> bool:
        """True when every id is an invariant that this run's regime excludes."""
        excluded = {
            inv.id
            for c in self.contracts
            for inv in c.invariants
            if self.regime.kind not in inv.regimes
        }
        return all(i in excluded for i in ids)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the Guard exactly (checkpoint it with the model)."""
        return {
            "last_step": self.last_step,
            "epoch": self.epoch,
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
        self.last_step = state["last_step"]
        self.epoch = state["epoch"]
        for t in self.tracked:
            if t.invariant.id in state["checks"]:
                t.check.load_state_dict(state["checks"][t.invariant.id])
            tally = state["tallies"].get(t.invariant.id)
            if tally:
                t.evaluations, t.violations = tally["evaluations"], tally["violations"]
                t.worst, t.last = tally["worst"], tally["last"]
                t.worst_excess = float(tally["worst_excess"])
        if self.evidence:
            self.evidence.write("resume", step=self.last_step, epoch=self.epoch)

    def close(self, error: BaseException | None = None) -> dict[str, Any]:
        """Write the verdict and metrics (rank 0) and close the evidence log."""
        verdict = self.verdict()
        if error is not None and not isinstance(error, InvariantViolation):
            verdict["ok"] = False
            verdict["crashed"] = f"{type(error).__name__}: {error}"
        if self.closed:
            return verdict
        self.closed = True
        if self.evidence and self.run_dir is not None:
            self.evidence.write(
                "end", ok=verdict["ok"], crashed=verdict.get("crashed"), **self._tallies()
            )
            self.evidence.close()
            write_verdict(self.run_dir, verdict)
            if len(self.metrics):
                self.metrics.write(self.run_dir)
        return verdict

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(exc)


def _with_hint(decision: Decision, hint: str) -> Decision:
    from dataclasses import replace

    return replace(decision, hint=hint)


def _load_contracts(paths: Sequence[str | Path] | None) -> list[Contract]:
    from traingate.contract.validation import discover

    files = discover([Path(p) for p in paths] if paths else [shipped_contracts_dir()])
    if not files:
        raise ValueError(f"no contract files found in {', '.join(str(p) for p in paths or [])}")
    return [load_valid(f) for f in files]


def _bind(
    contracts: Sequence[Contract],
    regime: Finetune | FromScratch,
    params: Mapping[str, float],
    only: Sequence[str] | None,
) -> list[Tracked]:
    """Build one check per invariant, with run parameters checked against declarations."""
    tracked: list[Tracked] = []
    wanted = set(only) if only is not None else None
    known = {inv.id for contract in contracts for inv in contract.invariants}
    declared = {name for contract in contracts for name in contract.parameters}
    undeclared = sorted(set(params) - declared)
    if undeclared:
        raise ValueError(
            f"unknown run parameters: {', '.join(undeclared)} "
            f"(declared: {', '.join(sorted(declared)) or 'none'})"
        )
    for contract in contracts:
        values: dict[str, float] = {}
        for name, value in {**params, **regime.symbols()}.items():
            spec = contract.parameters.get(name)
            values[name] = spec.check_value(name, float(value)) if spec else float(value)
        for inv in contract.invariants:
            if wanted is not None and inv.id not in wanted:
                continue
            if regime.kind not in inv.regimes:
                continue
            kind = REGISTRY[inv.check]
            _require_symbols(inv, kind, regime, values)
            context = CheckContext(regime, values)
            tracked.append(Tracked(inv, contract, kind(inv.params, context)))
    if wanted is not None:
        missing = wanted - known
        if missing:
            raise ValueError(f"unknown invariant ids: {', '.join(sorted(missing))}")
    return tracked


def _require_symbols(
    inv: Invariant,
    kind: type[Check[Any]],
    regime: Finetune | FromScratch,
    values: Mapping[str, float],
) -> None:
    """Fail at construction, not mid-run, when a threshold names a parameter with no value."""
    other = {name for name in REGIME_NAMES if name != regime.kind}
    metrics = kind.metric_symbols(inv.params)  # type: ignore[arg-type]
    for path, formula in iter_formulas(inv.params):
        if other & {str(p) for p in path}:
            continue  # the other regime's threshold
        missing = sorted(formula.symbols() - metrics - set(values))
        if missing:
            raise ValueError(
                f"{inv.id}: `{formula.source}` needs {', '.join(missing)}: pass it in params="
            )


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _scalar(value: Any) -> float:
    if _is_tensor(value):
        return float(value.detach().float().item())
    return float(value)


def _to_host(values: list[Any]) -> list[float]:
    """Move a list of scalars to the host in one transfer (one sync), as floats."""
    tensors = [v for v in values if _is_tensor(v)]
    if not tensors:
        return [float(v) for v in values]
    import torch

    device = tensors[0].device
    stacked = torch.stack(
        [
            v.detach().reshape(()).to(device=device, dtype=torch.float32)
            if _is_tensor(v)
            else torch.tensor(float(v), device=device)
            for v in values
        ]
    )
    return stacked.tolist()


def _total_grad_norm(model: Any) -> Any:
    """Total L2 norm of the model's gradients, on device (no sync)."""
    import torch

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.detach(), 2.0) for g in grads]), 2.0
    )
