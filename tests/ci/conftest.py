"""Builders for the small contracts the CI tests write: one place for a contract's boilerplate.

``contract_yaml`` wraps invariants and gates in a valid, active contract; ``invariant``,
``expression`` and ``gate`` spell one entry each; ``NON_DIVERGENCE`` is the shipped
regime-keyed epoch-0 cap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

NON_DIVERGENCE = {
    "epoch_zero_cap": {"finetune": "10.0", "from_scratch": "2 * ln(vocab_size)"},
    "ratio_limit": 2.0,
}
VOCAB_SIZE = {"vocab_size": {"type": "int", "min": 2}}


def invariant(
    inv_id: str,
    title: str,
    check: str,
    at: str,
    params: Mapping[str, Any],
    on_violation: str = "abort",
) -> dict[str, Any]:
    """One invariant entry of a contract."""
    return {
        "id": inv_id,
        "title": title,
        "check": check,
        "at": at,
        "params": dict(params),
        "on_violation": on_violation,
    }


def expression(
    inv_id: str, title: str, at: str, predicate: str, metric: str, on_violation: str = "warn"
) -> dict[str, Any]:
    """An ``expression`` invariant: ``predicate`` over the one observed ``metric``."""
    params = {"predicate": predicate, "metrics": [metric]}
    return invariant(inv_id, title, "expression", at, params, on_violation)


def gate(gate_id: str, requires: Sequence[str], *, ship_blocking: bool = True) -> dict[str, Any]:
    """One gate entry of a contract."""
    return {"id": gate_id, "requires": list(requires), "ship_blocking": ship_blocking}


def contract_yaml(
    contract: str,
    version: str,
    title: str,
    invariants: Sequence[Mapping[str, Any]],
    gates: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any] | None = None,
) -> str:
    """YAML of an active contract holding ``invariants`` and ``gates``."""
    data: dict[str, Any] = {
        "contract": contract,
        "version": version,
        "title": title,
        "status": "active",
        "changelog": [{"version": version, "date": dt.date(2026, 1, 1), "change": "first"}],
    }
    if parameters:
        data["parameters"] = dict(parameters)
    data["invariants"] = [dict(i) for i in invariants]
    data["gates"] = [dict(g) for g in gates]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
