"""The run modes a contract declares: what ``trainer pretrain --mode NAME`` sets together.

A mode row (regime, peak lr, warm-up, target val loss) lives in the contract beside the
invariants it is judged by, so the contract, not the trainer's code, says what a
from-scratch run is. A trainer reads the rows of the contracts it enforces; when none of
them declares a mode, the shipped pretraining contract's rows apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from traingate.contract.schema import Contract, ModeRow
from traingate.contract.shipped import ContractError, load_valid, shipped_contracts
from traingate.contract.validation import discover

FALLBACK_CONTRACT = "C-TRAIN-PRETRAIN"


@dataclass(frozen=True)
class DeclaredMode:
    """A mode's row and the contract (``C-…@version``) that declared it."""

    name: str
    row: ModeRow
    source: str


def declared_modes(contracts: Sequence[Contract]) -> dict[str, DeclaredMode]:
    """Every mode the contracts declare, by name; two contracts declaring one mode with
    different rows are a ContractError naming both (a run would not know which applies)."""
    modes: dict[str, DeclaredMode] = {}
    for contract in contracts:
        for name, row in contract.modes.items():
            seen = modes.get(name)
            if seen is not None and seen.row != row:
                raise ContractError(
                    f"mode {name!r} is declared differently by {seen.source} and {contract.ref}"
                )
            modes.setdefault(name, DeclaredMode(name, row, contract.ref))
    return modes


def mode_row(contract_files: Sequence[Path], name: str) -> DeclaredMode:
    """The row ``--mode name`` applies: from the enforced contract files or folders, or (when
    none declares a mode) from the shipped pretraining contract. An undeclared mode is a
    ContractError listing the declared ones."""
    files = discover([Path(p) for p in contract_files])  # folders as the Guard reads them
    modes = declared_modes([load_valid(f) for f in files])
    if not modes:
        modes = declared_modes([c for c in shipped_contracts() if c.contract == FALLBACK_CONTRACT])
    if name not in modes:
        sources = sorted({m.source for m in modes.values()})
        raise ContractError(
            f"mode {name!r} is not declared: {', '.join(sorted(modes)) or 'no modes'} "
            f"are (the modes: block of {', '.join(sources) or 'the enforced contracts'})"
        )
    return modes[name]
