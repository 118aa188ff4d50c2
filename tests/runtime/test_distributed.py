"""Two gloo ranks on CPU: a violation on one rank aborts every rank at the same point.

One spawn (file:// rendezvous, no TCP port) runs every scenario in order on both ranks and
each rank writes what it saw to a JSON file; the tests below read those files. A collective
that never completes would fail the process group's 30 s timeout, and the test's own 120 s.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from traingate.checks import REGISTRY
from traingate.contract.presets import shipped
from traingate.contract.regime import FromScratch
from traingate.runtime.evidence import read_evidence
from traingate.runtime.guard import Guard, InvariantViolation

from .conftest import CLASSES, FALSIFIER, Loop, contract_text, divergence, finite_step

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORLD = 2
NAN_STEP = 3
BAD_RANK = 1
GATHER_FIELDS = ("predictions", "labels")


def _raised(guard: Guard, run: Callable[[], None]) -> dict[str, Any]:
    """Run ``run`` inside ``guard`` and describe the InvariantViolation it raised, if any."""
    try:
        with guard:
            run()
    except InvariantViolation as err:
        return {
            "raised": True,
            "invariant": err.invariant_id,
            "contract": err.contract,
            "observed": repr(err.observed),
            "step": err.step,
            "epoch": err.epoch,
            "rank": err.rank,
        }
    return {"raised": False}


def _nan_on_one_rank(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    loop = Loop(seed=0)  # the same model and data on both ranks
    guard = Guard([contracts / "finite.yaml"], regime=FromScratch(CLASSES), run_dir=out / "nan")
    applied: list[int] = []
    before: list[torch.Tensor] = []

    def run() -> None:
        nonlocal before
        for step, (x, y) in enumerate(loop.batches(6)):
            if step == NAN_STEP and rank == BAD_RANK:
                x[0, 0] = float("nan")
            loss = loop.forward_backward(x, y)
            before = loop.snapshot()
            grad_norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
            guard.step(step, loss=loss, grad_norm=grad_norm)
            loop.opt.step()
            loop.opt.zero_grad()
            applied.append(step)

    result = _raised(guard, run)
    result["applied"] = applied
    result["unchanged"] = all(
        torch.equal(a, b) for a, b in zip(before, loop.snapshot(), strict=True)
    )
    return result


def _val_on_one_rank(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    loop = Loop(seed=0)
    guard = Guard([contracts / "div.yaml"], regime=FromScratch(CLASSES), run_dir=out / "val")
    own: list[float] = []

    def run() -> None:
        for step, (x, y) in enumerate(loop.batches(2)):
            guard.step(step, loss=loop.forward_backward(x, y))
            loop.opt.step()
            loop.opt.zero_grad()
        own.append(100.0 if rank == BAD_RANK else float(loop.val_loss()))
        guard.validation(0, val_loss=own[0])

    result = _raised(guard, run)
    result["own_val_loss"] = own[0]
    if rank == 0:
        result["events"] = list(read_evidence(out / "val" / "evidence.jsonl"))
    return result


def _healthy(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    files = [contracts / "div.yaml"] + ([contracts / "finite.yaml"] if "finite" in REGISTRY else [])
    loop = Loop(seed=0)
    run_dir = out / f"rank{rank}"  # per-rank paths, to see which ranks write
    guard = Guard(files, regime=FromScratch(CLASSES), run_dir=run_dir)
    step = 0
    with guard:
        for epoch in range(2):
            for x, y in loop.batches(3):
                loss = loop.forward_backward(x, y)
                grad_norm = torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
                guard.step(step, loss=loss, grad_norm=grad_norm)
                loop.opt.step()
                loop.opt.zero_grad()
                step += 1
            guard.validation(epoch, val_loss=loop.val_loss())
    return {
        "verdict": guard.judge().to_dict(),
        "files": sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else [],
    }


def _plateau_on_one_rank(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    """Rank 1's val loss plateaus, rank 0's improves: C-TRAIN-CONVERGENCE's stop (patience 3)."""
    del contracts  # the shipped convergence contract
    guard = Guard(shipped("C-TRAIN-CONVERGENCE"), regime=FromScratch(CLASSES), run_dir=out)
    stops = []
    with guard:
        for epoch in range(6):
            guard.validation(epoch, val_loss=3.0 if rank == BAD_RANK else 3.0 - epoch / 10)
            stops.append(guard.should_stop)
    return {"stops": stops, "reason": guard.stop_reason}


def _spy_updates(guard: Guard) -> list[dict[str, Any]]:
    """Record the observation each validation check's ``update`` receives."""
    seen: list[dict[str, Any]] = []
    for t in guard.by_point["validation"]:
        original = t.check.update

        def update(obs: Any, _original: Any = original) -> None:
            seen.append({k: v.tolist() for k, v in obs.items() if isinstance(v, torch.Tensor)})
            _original(obs)

        t.check.update = update  # type: ignore[method-assign]
    return seen


def _local_field(name: str, rank: int) -> torch.Tensor:
    """Rank-specific validation outputs (ranks hold different numbers of samples)."""
    gen = torch.Generator().manual_seed(100 + rank)
    return torch.randint(0, CLASSES, (3 + rank,), generator=gen)


def _gather_declared(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    """The Guard's gather path, driven by a validation check that declares ``gather``."""
    guard = Guard([contracts / "div.yaml"], regime=FromScratch(CLASSES))
    guard.by_point["validation"][0].check.gather = GATHER_FIELDS  # type: ignore[misc]
    seen = _spy_updates(guard)
    fields = {f: _local_field(f, rank) for f in GATHER_FIELDS}
    with guard:
        guard.validation(0, val_loss=1.0, **fields)
    return {"seen": seen}


def distinct_outputs(rank: int) -> dict[str, torch.Tensor]:
    """Every rank sees all 6 gold labels but predicts only 3 of them; together they predict 6."""
    return {
        "predictions": torch.tensor([0, 1, 2, 0, 1, 2]) + 3 * rank,
        "labels": torch.arange(6),
    }


def _distinct_predictions(rank: int, contracts: Path, out: Path) -> dict[str, Any]:
    """A registered kind that declares ``gather`` decides on every rank's predictions."""
    guard = Guard([contracts / "distinct.yaml"], regime=FromScratch(CLASSES))
    seen = _spy_updates(guard)
    result = _raised(guard, lambda: guard.validation(0, val_loss=1.0, **distinct_outputs(rank)))
    inv = guard.judge().invariants["INV-TEST-010"]
    assert inv.last is not None
    return {**result, "seen": seen, "status": inv.status, "observed": inv.last.observed}


def distinct_contract() -> str:
    return contract_text(
        [
            {
                "id": "INV-TEST-010",
                "title": "The model predicts distinct labels",
                "check": "distinct_predictions",
                "at": "validation",
                "params": {"min_distinct": 6},
                "on_violation": "abort",
                "falsified_by": [FALSIFIER],
            }
        ]
    )


SCENARIOS: dict[str, Callable[[int, Path, Path], dict[str, Any]]] = {
    "val": _val_on_one_rank,
    "healthy": _healthy,
    "gather_declared": _gather_declared,
}
if "finite" in REGISTRY:
    SCENARIOS["nan"] = _nan_on_one_rank
if "distinct_predictions" in REGISTRY:
    SCENARIOS["distinct"] = _distinct_predictions
if "convergence" in REGISTRY:
    SCENARIOS["plateau"] = _plateau_on_one_rank


def _worker(rank: int, init_file: str, contracts: str, out: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=dt.timedelta(seconds=30),
    )
    try:
        results = {}
        for name, scenario in SCENARIOS.items():
            results[name] = scenario(rank, Path(contracts), Path(out) / name)
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(results), encoding="utf-8")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Spawn the two ranks once; return what each of them saw, by scenario."""
    root = tmp_path_factory.mktemp("dist")
    contracts = root / "contracts"
    contracts.mkdir()
    (contracts / "div.yaml").write_text(contract_text([divergence()]), encoding="utf-8")
    if "finite" in REGISTRY:
        (contracts / "finite.yaml").write_text(contract_text([finite_step()]), encoding="utf-8")
    if "distinct_predictions" in REGISTRY:
        (contracts / "distinct.yaml").write_text(distinct_contract(), encoding="utf-8")
    out = root / "out"
    out.mkdir()
    mp.spawn(
        _worker,
        args=(str(root / "rendezvous"), str(contracts), str(out)),
        nprocs=WORLD,
        join=True,
    )
    return [json.loads((out / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(WORLD)]


@pytest.mark.skipif("finite" not in REGISTRY, reason="check kind `finite` is not registered")
def test_nan_loss_on_one_rank_aborts_every_rank_at_the_same_step(
    ranks: list[dict[str, Any]],
) -> None:
    results = [r["nan"] for r in ranks]
    assert all(r["raised"] for r in results)
    assert {r["invariant"] for r in results} == {"INV-TEST-001"}
    assert {r["step"] for r in results} == {NAN_STEP}
    assert all(r["observed"] == "nan" for r in results)  # rank 0 reports rank 1's observation
    for r in results:  # no rank applied the poisoned step, none kept training
        assert r["applied"] == list(range(NAN_STEP))
        assert r["unchanged"]


def test_validation_violation_on_one_rank_aborts_both(ranks: list[dict[str, Any]]) -> None:
    results = [r["val"] for r in ranks]
    assert results[0]["own_val_loss"] < 2 * math.log(CLASSES)  # rank 0 alone would pass
    assert all(r["raised"] for r in results)
    assert {(r["invariant"], r["step"], r["epoch"]) for r in results} == {("INV-TEST-005", 1, 0)}
    assert {r["observed"] for r in results} == {"100.0"}
    violations = [e for e in ranks[0]["val"]["events"] if e["event"] == "violation"]
    assert len(violations) == 1
    assert violations[0]["observed"] == 100.0


@pytest.mark.skipif(
    "convergence" not in REGISTRY, reason="check kind `convergence` is not registered"
)
def test_a_plateau_on_one_rank_stops_every_rank_at_the_same_validation(
    ranks: list[dict[str, Any]],
) -> None:
    results = [r["plateau"] for r in ranks]
    assert [r["stops"] for r in results] == [[False] * 3 + [True] * 3] * WORLD
    assert results[0]["reason"] == results[1]["reason"]
    assert results[0]["reason"].startswith("INV-CONV-001: epoch 3:")


def test_violation_names_the_rank_that_observed_it(ranks: list[dict[str, Any]]) -> None:
    assert [r["val"]["rank"] for r in ranks] == [BAD_RANK, BAD_RANK]
    violation = next(e for e in ranks[0]["val"]["events"] if e["event"] == "violation")
    assert violation["rank"] == BAD_RANK


def test_healthy_ranks_pass_with_identical_verdicts(ranks: list[dict[str, Any]]) -> None:
    verdicts = [r["healthy"]["verdict"] for r in ranks]
    assert verdicts[0] == verdicts[1]
    assert verdicts[0]["ok"] is True
    assert verdicts[0]["world_size"] == WORLD
    assert verdicts[0]["invariants"]["INV-TEST-005"]["evaluations"] == 2
    assert ranks[0]["healthy"]["files"] == ["evidence.jsonl", "metrics.parquet", "verdict.json"]
    assert ranks[1]["healthy"]["files"] == []  # only rank 0 writes the run dir


def test_validation_gather_fields_concatenate_across_ranks(ranks: list[dict[str, Any]]) -> None:
    expected = {
        f: torch.cat([_local_field(f, r) for r in range(WORLD)]).tolist() for f in GATHER_FIELDS
    }
    for r in ranks:
        (seen,) = r["gather_declared"]["seen"]
        assert seen == expected


@pytest.mark.skipif(
    "distinct_predictions" not in REGISTRY,
    reason="check kind `distinct_predictions` (declares gather) is not registered",
)
def test_registered_gather_kind_decides_on_every_ranks_predictions(
    ranks: list[dict[str, Any]], tmp_path: Path
) -> None:
    for rank, r in enumerate(ranks):
        result = r["distinct"]
        assert not result["raised"], result
        assert (result["status"], result["observed"]) == ("pass", 6.0)
        (seen,) = result["seen"]
        assert seen["predictions"] == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5], rank
        assert seen["labels"] == list(range(6)) * 2, rank
    # control: one rank's predictions alone (no gather) are a collapse under the same contract
    path = tmp_path / "distinct.yaml"
    path.write_text(distinct_contract(), encoding="utf-8")
    with pytest.raises(InvariantViolation) as caught, Guard([path]) as guard:
        guard.validation(0, val_loss=1.0, **distinct_outputs(0))
    assert caught.value.observed == 3.0
