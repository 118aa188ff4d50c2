"""What a Guard's contracts say about a run, recorded in its start event and its verdict.

Pure functions of the loaded contracts, the bound invariants and the regime: which
invariants a ship-blocking gate requires, each invariant's definition, the gates, and the
invariants the regime excludes. ``contracts check`` re-derives the verdict from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traingate.contract.regime import Finetune, FromScratch
from traingate.contract.schema import Contract
from traingate.runtime.binding import Tracked


def ship_blocking(contracts: Sequence[Contract]) -> set[str]:
    """The invariant ids some ship-blocking gate requires."""
    return {req for c in contracts for g in c.gates if g.ship_blocking for req in g.requires}


def definitions(contracts: Sequence[Contract], tracked: Sequence[Tracked]) -> dict[str, Any]:
    """What the policy needs of each tracked invariant."""
    blocking = ship_blocking(contracts)
    return {
        t.invariant.id: {
            "contract": t.contract.ref,
            "title": t.invariant.title,
            "check": t.invariant.check,
            "at": t.invariant.at,
            "on_violation": t.invariant.on_violation,
            "ship_blocking": t.invariant.id in blocking,
        }
        for t in tracked
    }


def gates(contracts: Sequence[Contract]) -> dict[str, dict[str, Any]]:
    """Every gate of the contracts: its contract, requirements and whether it blocks."""
    return {
        g.id: {"contract": c.ref, "requires": g.requires, "ship_blocking": g.ship_blocking}
        for c in contracts
        for g in c.gates
    }


def excluded(contracts: Sequence[Contract], regime: Finetune | FromScratch) -> list[str]:
    """The contracts' invariants this run's regime excludes."""
    return [inv.id for c in contracts for inv in c.invariants if regime.kind not in inv.regimes]
