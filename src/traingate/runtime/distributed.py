"""Agreement across torch.distributed ranks: every rank decides what any rank saw.

At each evaluation point the ranks all-reduce one violation flag per invariant (MAX: "any
rank violated" wins); only when a flag is up do they gather the decisions, so a healthy
step costs one small collective. Validation fields a check declares in ``gather`` (e.g.
predictions) are concatenated across ranks before any check sees them.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from traingate.checks import Decision


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``dist`` is torch.distributed when it is in use."""

    dist: Any
    rank: int
    world: int

    @classmethod
    def current(cls) -> Ranks:
        """The initialised process group, or a single rank (torch is not imported needlessly)."""
        if "torch" not in sys.modules:
            return cls(None, 0, 1)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist, dist.get_rank(), dist.get_world_size())
        return cls(None, 0, 1)

    @property
    def single(self) -> bool:
        """True when there is nothing to agree with."""
        return self.dist is None or self.world == 1

    def reduce(self, decisions: list[Any]) -> Iterable[tuple[Any, int]]:
        """Each decision paired with its rank; an invariant violated on any rank is violated
        on all (the same decision, attributed to the lowest rank that violated it). On one
        process: the decisions as they are (a Guard's fast passes among them; across
        ranks it hands only Decisions or None)."""
        if self.single:
            return zip(decisions, repeat(self.rank))
        own = [(d, self.rank) for d in decisions]
        import torch

        dist = self.dist
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

    def gather(self, obs: dict[str, Any], fields: Collection[str]) -> dict[str, Any]:
        """``obs`` with each of ``fields`` it holds concatenated across ranks (rank order)."""
        present = sorted(f for f in fields if f in obs)
        if self.single or not present:
            return obs
        import torch

        local = {f: obs[f].cpu() for f in present}
        gathered: list[dict[str, Any]] = [None] * self.world  # type: ignore[list-item]
        self.dist.all_gather_object(gathered, local)
        out = dict(obs)
        for f in present:
            out[f] = torch.cat([g[f] for g in gathered])
        return out
