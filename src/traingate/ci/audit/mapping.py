"""Which observation a mapped column is, and which points a replay can feed.

Columns are mapped to observation names explicitly, never guessed: ``loss``,
``grad_norm``, ``lr``, ``components.NAME``, ``weights.NAME`` (step point), ``val_loss``,
``val_components.NAME`` (validation point), ``step``, ``epoch``, and any other name as an
extra scalar metric. Every observation the selected invariants need at a replayed point
must be mapped (as each kind declares in ``Check.observes`` / ``Check.observes_any`` /
``Check.demands``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from traingate.ci.audit.errors import AuditError
from traingate.runtime.guard import Guard
from traingate.runtime.reference import SUPPLIED

STEP_SCALARS = frozenset({"loss", "grad_norm", "lr"})
VAL_SCALARS = frozenset({"val_loss"})
GROUPS = {"components": "step", "weights": "step", "val_components": "validation"}
# tensors a log cannot hold, and Guard.step's own keyword ``model``
NOT_SCALARS = frozenset({"predictions", "labels", "probabilities", "embeddings", "groups", "model"})
INDEX = frozenset({"step", "epoch"})


def point_of(observation: str) -> str:
    """``step``, ``validation``, ``extra`` or ``index`` for a mapped observation name."""
    if observation in INDEX:
        return "index"
    if observation in STEP_SCALARS:
        return "step"
    if observation in VAL_SCALARS:
        return "validation"
    group, dot, name = observation.partition(".")
    if dot:
        if group not in GROUPS or not name:
            raise AuditError(
                f"observation {observation!r}: only components.NAME, weights.NAME and "
                "val_components.NAME have a dot"
            )
        return GROUPS[group]
    if observation in NOT_SCALARS or observation in GROUPS:
        raise AuditError(
            f"observation {observation!r} is not a scalar a metrics log can hold"
            + (f"; map columns to {observation}.NAME" if observation in GROUPS else "")
        )
    return "extra"


def _provided(mapping: Mapping[str, str]) -> dict[str, set[str]]:
    """Observation names each point receives from ``mapping`` (groups collapse to a name)."""
    targets = set(mapping.values())
    names = {t.partition(".")[0] if "." in t else t for t in targets}
    extras = {t for t in targets if point_of(t) == "extra"}
    step = {"step"} | {n for n in names if n in STEP_SCALARS or n in ("components", "weights")}
    val = {"epoch", "step"} | {n for n in names if n in VAL_SCALARS or n == "val_components"}
    final = {"step", "epoch"} | (targets & (STEP_SCALARS | VAL_SCALARS)) | extras
    final |= SUPPLIED  # the Guard hands these itself (given a reference)
    return {"step": step | extras, "validation": val | extras, "final": final}


def plan(
    guard: Guard, mapping: Mapping[str, str], columns: Sequence[str], source: Path
) -> set[str]:
    """The points the replay will feed; AuditError when a needed observation is unmapped."""
    missing_columns = [c for c in mapping if c not in columns]
    if missing_columns:
        raise AuditError(
            f"{source}: mapped column(s) not in the file: {', '.join(missing_columns)}; "
            f"columns: {', '.join(columns)}"
        )
    seen: dict[str, str] = {}
    for column, observation in mapping.items():
        point_of(observation)
        if observation in seen:
            raise AuditError(
                f"observation {observation!r} is mapped from two columns: "
                f"{seen[observation]} and {column}"
            )
        seen[observation] = column
    targets = set(mapping.values())
    points = {"final"}
    if "step" in targets:
        points.add("step")
    if "epoch" in targets:
        points.add("validation")
    if points == {"final"}:
        raise AuditError(
            f"{source}: map a column to `step` (step rows) or `epoch` (validation rows); "
            f"columns: {', '.join(columns)}"
        )
    if "step" in points and "loss" not in targets:
        raise AuditError(
            f"{source}: step rows need `loss` (every Guard step observes one): map a column "
            f"to loss; columns: {', '.join(columns)}"
        )
    provided = _provided(mapping)
    unmapped: list[str] = []
    for point in sorted(points):
        for t in guard.by_point[point]:
            needs, any_of = t.needs | t.check.demands(), t.check.observes_any()
            lacking = sorted(needs - provided[point])
            if any_of and not any_of & provided[point]:
                lacking.append(f"one of {'/'.join(sorted(any_of))}")
            if lacking:
                unmapped.append(f"{', '.join(lacking)} (for {t.invariant.id} at {point})")
    if unmapped:
        raise AuditError(
            f"{source}: unmapped observations: {'; '.join(unmapped)}; columns: "
            f"{', '.join(columns)}. Map them with --map COLUMN=OBSERVATION (components as "
            "components.NAME / val_components.NAME) or choose invariants with --only"
        )
    return points


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["total_loss=val_loss", "epoch"]`` → ``{"total_loss": "val_loss", "epoch": "epoch"}``.

    A bare ``NAME`` maps the column of that name to the observation of that name.
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, observation = pair.partition("=")
        column, observation = column.strip(), (observation.strip() if sep else column.strip())
        if not column or not observation:
            raise AuditError(f"--map expects COLUMN=OBSERVATION or COLUMN, got {pair!r}")
        if column in mapping:
            raise AuditError(f"--map: column {column} is mapped twice")
        mapping[column] = observation
    return mapping
