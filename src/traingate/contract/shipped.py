"""The contracts traingate ships and enforces on itself, found with or without the repo.

In a wheel they live in ``traingate/_shipped/contracts`` (with their falsifiers beside them);
in a source checkout, in the repository's ``contracts/``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from traingate.contract.loading import LoadedContract, load_contract
from traingate.contract.schema import Contract, Invariant
from traingate.errors import TraingateError


class ContractError(TraingateError):
    """A contract that failed to load or validate where a valid one was required."""


def shipped_root() -> Path:
    """The folder holding ``contracts/`` and ``falsifiers/`` for the shipped contracts.

    ``TRAINGATE_SHIPPED_ROOT`` overrides it (mutation testing runs falsifiers on a copy).
    """
    override = os.environ.get("TRAINGATE_SHIPPED_ROOT")
    if override:
        return Path(override)
    packaged = Path(__file__).resolve().parents[1] / "_shipped"
    if (packaged / "contracts").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "contracts").is_dir():
        return checkout
    raise ContractError("traingate's shipped contracts are missing from this installation")


def shipped_contracts_dir() -> Path:
    return shipped_root() / "contracts"


def load_valid(path: Path) -> Contract:
    """Load one contract file and raise ContractError (with every finding) unless it is clean."""
    loaded: LoadedContract = load_contract(path)
    errors = [f for f in loaded.findings if f.severity == "error"]
    if errors or loaded.contract is None:
        raise ContractError("\n".join(f.text() for f in errors) or f"{path}: invalid contract")
    return loaded.contract


@lru_cache(maxsize=1)
def shipped_contracts() -> tuple[Contract, ...]:
    """Every shipped contract, loaded and typed (cached for the process)."""
    files = sorted(shipped_contracts_dir().glob("*.yaml"))
    return tuple(load_valid(p) for p in files)


def contract_of(invariant_id: str) -> Contract:
    """The shipped contract that defines ``invariant_id``."""
    for contract in shipped_contracts():
        if any(inv.id == invariant_id for inv in contract.invariants):
            return contract
    raise KeyError(f"no shipped contract defines {invariant_id}")


def invariant(invariant_id: str) -> Invariant:
    """A shipped invariant with its params typed by its check kind (falsifiers use this)."""
    for inv in contract_of(invariant_id).invariants:
        if inv.id == invariant_id:
            return inv
    raise KeyError(invariant_id)
