"""Pick shipped contracts by purpose or by id: ``traingate.shipped("pretrain")``.

A language-model loop that loaded every shipped contract would carry eleven ship-blocking
classifier invariants (liveness, calibration, confusion, export) it can never evaluate, so
``contracts check`` could never pass. A preset names the contracts a kind of loop can feed;
the Guard's default is ``pretrain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from traingate.contract.schema import Contract
from traingate.contract.shipped import ContractError, shipped_contracts, shipped_contracts_dir

# preset → the shipped contract ids it loads, and what loop it is for
PRESETS: dict[str, tuple[tuple[str, ...], str]] = {
    "pretrain": (
        ("C-TRAIN-PRETRAIN", "C-TRAIN-CONVERGENCE"),
        "a language-model training loop: steps and val loss",
    ),
    "export": (("C-EXPORT-ONNX",), "ONNX export parity against torch"),
    "classifier": (
        ("C-TRAIN-PRETRAIN", "C-LIVENESS", "C-CALIBRATION"),
        "a classifier: the loop checks plus predictions, labels and probabilities",
    ),
    "multitask": (("C-TRAIN-PRETRAIN", "C-LOSS-BALANCE"), "a loop with loss components"),
}
DEFAULT_PRESET = "pretrain"


def shipped(*names: str) -> list[Path]:
    """The shipped contract files that presets (``"pretrain"``) or contract ids
    (``"C-LIVENESS"``) name, in order, each once; ``"all"`` is every shipped contract.

    Hand the result to ``Guard(contracts=...)``, ``--contracts`` or ``contracts check``.
    An unknown name is a ContractError listing the presets and ids there are.
    """
    files = {c.contract: path for c, path in _by_id()}
    chosen: list[Path] = []
    for name in names or (DEFAULT_PRESET,):
        if name == "all":
            ids: tuple[str, ...] = tuple(files)
        elif name in PRESETS:
            ids = PRESETS[name][0]
        elif name in files:
            ids = (name,)
        else:
            raise ContractError(
                f"no shipped preset or contract {name!r}; presets: "
                f"{', '.join([*PRESETS, 'all'])}; contracts: {', '.join(sorted(files))}"
            )
        chosen += [files[i] for i in ids if files[i] not in chosen]
    return chosen


def defining(invariant_ids: Sequence[str]) -> list[Path]:
    """The shipped contract files that define ``invariant_ids`` (what ``only=`` picks from
    when no contracts are given); an id no shipped contract defines is a ContractError."""
    shipped_files = _by_id()
    owners: list[Path] = []
    for inv_id in invariant_ids:
        owner = next(
            (path for c, path in shipped_files if inv_id in {i.id for i in c.invariants}), None
        )
        if owner is None:
            raise ContractError(f"no shipped contract defines {inv_id}")
        if owner not in owners:
            owners.append(owner)
    return owners


def _by_id() -> list[tuple[Contract, Path]]:
    """(contract, file) of every shipped contract, in file order."""
    paths = sorted(shipped_contracts_dir().glob("*.yaml"))
    return list(zip(shipped_contracts(), paths, strict=True))
