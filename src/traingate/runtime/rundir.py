"""Opening a run dir for the Guard: a new run, or the continuation of the one it holds.

A run dir that already holds a run (``evidence.jsonl`` or ``verdict.json``) is only opened
with ``resume=True``, and a resumed run must be the same run: the contracts (id, version,
sha256), the regime, the run parameters, the invariant selection and the loop's ``config``
(lr, warm-up, …) recorded by the first
``start`` event must match, unless ``allow_config_change=True``, which is recorded as a
``config_change`` event naming each difference. The previous process's ``verdict.json`` is
removed on resume: it describes a process that is over, and the evidence keeps its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traingate.runtime.evidence import (
    EVIDENCE,
    VERDICT,
    EvidenceLog,
    RunDirError,
    jsonable,
    read_chained,
)

# the parts of a run's identity that a resume may not change
IDENTITY = ("contracts", "contract_sha256", "regime", "params", "only", "config")


class ConfigChangeError(RunDirError):
    """A resume would change what the run is gated by (a usage error, exit 2)."""


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a run's evidence or verdict."""
    return (run_dir / EVIDENCE).is_file() or (run_dir / VERDICT).is_file()


def identity_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: {"before": …, "after": …}}`` for each identity field that differs."""
    after = jsonable(after)
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in IDENTITY
        if before.get(name) != after.get(name)
    }


def describe_changes(changes: Mapping[str, Any]) -> str:
    """``regime: {...} → {...}; params: …`` for an error message or a note."""
    return "; ".join(f"{name}: {c['before']} → {c['after']}" for name, c in changes.items())


def open_evidence(
    run_dir: Path, identity: Mapping[str, Any], *, resume: bool, allow_config_change: bool
) -> EvidenceLog:
    """The evidence log of ``run_dir``, checked as the module docstring says."""
    if not holds_run(run_dir):
        return EvidenceLog(run_dir)
    if not resume:
        raise RunDirError(
            f"{run_dir}: already holds a run ({EVIDENCE}); resume it with "
            "Guard(..., resume=True) and load_state_dict(), or choose another run_dir"
        )
    first = _first_start(run_dir)
    changes = identity_changes(first, identity) if first is not None else {}
    if changes and not allow_config_change:
        raise ConfigChangeError(
            f"{run_dir}: resuming would change the run's {', '.join(changes)} "
            f"({describe_changes(changes)}); start a new run dir, or allow it explicitly "
            "(allow_config_change=True, trainer --allow-config-change), which is recorded"
        )
    (run_dir / VERDICT).unlink(missing_ok=True)
    log = EvidenceLog(run_dir)
    if changes:
        log.write("config_change", changes=changes)
    return log


def _first_start(run_dir: Path) -> dict[str, Any] | None:
    """The first ``start`` event of the run dir's evidence (None when there is none)."""
    path = run_dir / EVIDENCE
    if not path.is_file():
        return None
    return next((e for e in read_chained(path).events if e.get("event") == "start"), None)
