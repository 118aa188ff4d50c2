"""What a pv-format contract's names and strings mean in traingate's terms.

The tables and small readers :mod:`traingate.contract.pv_import` maps with: pv metric names
to the observations a loop hands the Guard, a mode row's keys, statuses, the changelog's
``"1.5.0 (2026-04-22): text"`` strings, and ids normalised to traingate's id patterns.
Every reader raises :class:`PvImportError` with the pv field it could not read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from traingate.contract.findings import field_path
from traingate.contract.schema import is_semver
from traingate.errors import TraingateError

Loc = tuple[str | int, ...]
RowStatus = Literal["mapped", "draft", "skipped"]

# pv per-step metric names → the observation names traingate's loops hand the Guard
METRIC_NAMES: dict[str, str] = {
    "train_loss": "loss",
    "learning_rate": "lr",
    "tokens/s": "tokens_per_sec",
    "tokens_per_s": "tokens_per_sec",
    "tok_per_sec": "tokens_per_sec",
}

# pv hyperparameter_defaults row keys → traingate ModeRow fields
MODE_KEYS: dict[str, str] = {
    "regime": "regime",
    "lr": "lr",
    "learning_rate": "lr",
    "warmup": "warmup",
    "warmup_steps": "warmup",
    "target_val_loss": "target_val_loss",
    "description": "description",
}

STATUSES: dict[str, str] = {"ACTIVE": "active", "DRAFT": "draft", "DEPRECATED": "deprecated"}

DRAFT = "DRAFT (needs a human)"

CHANGELOG_LINE = re.compile(
    r"(?P<version>[^\s(]+)\s*\((?P<date>[^)]*)\)\s*:\s*(?P<change>\S.*)", re.DOTALL
)


class PvImportError(TraingateError):
    """A pv contract that cannot be read: the field (a path into the pv data) and why."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(f"{field_path(loc) or '(top level)'}: {message}")
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class Row:
    """What became of one source id: ``mapped`` exactly, imported as a ``draft`` that needs
    a human, or ``skipped`` (not imported: nothing in traingate says it exactly)."""

    source_id: str
    status: RowStatus
    note: str
    target: str = ""


def metric_name(name: str) -> str:
    """The traingate observation a pv metric name stands for (unknown names are kept)."""
    return METRIC_NAMES.get(name, name)


def observation_names(names: list[str]) -> list[str]:
    """The observations pv metric names stand for, in order, each once."""
    return list(dict.fromkeys(metric_name(n) for n in names))


def renames(keys: Iterable[Any]) -> str:
    """``"train_loss → loss, …"``: the pv names that stand for another observation."""
    return ", ".join(f"{k} → {metric_name(str(k))}" for k in keys if metric_name(str(k)) != k)


def semver_key(version: str) -> tuple[int, int, int, int]:
    """Sort key of a semver string (a pre-release sorts before its release)."""
    core = re.split(r"[-+]", version, maxsplit=1)[0]
    major, minor, patch = (int(part) for part in core.split("."))
    return (major, minor, patch, 0 if "-" in version.split("+")[0] else 1)


def version_text(value: Any, loc: Loc) -> str:
    """A version as written, refusing what is not semver (YAML reads ``1.5`` as a float)."""
    text = str(value).strip() if isinstance(value, str | int | float) else ""
    if not is_semver(text):
        raise PvImportError(loc, f"version {value!r} is not semver (MAJOR.MINOR.PATCH)")
    return text


def changelog_entry(entry: Any, loc: Loc) -> dict[str, Any]:
    """``"1.5.0 (2026-04-22): text"`` (or a ``{version, date, change}`` mapping) as a
    traingate changelog entry."""
    if isinstance(entry, dict) and set(entry) == {"version", "date", "change"}:
        version, date, change = entry["version"], entry["date"], entry["change"]
    elif isinstance(entry, str) and (match := CHANGELOG_LINE.fullmatch(entry.strip())):
        version, date, change = match["version"], match["date"].strip(), match["change"]
    else:
        raise PvImportError(
            loc, f'cannot read changelog entry {entry!r}: expected "VERSION (YYYY-MM-DD): change"'
        )
    if not isinstance(date, dt.date):
        try:
            date = dt.date.fromisoformat(str(date))
        except ValueError:
            raise PvImportError(loc, f"changelog entry {entry!r}: {date!r} is no date") from None
    if not isinstance(change, str) or not change.strip():
        raise PvImportError(loc, f"changelog entry {entry!r} says no change")
    return {"version": version_text(version, loc), "date": date, "change": change.strip()}


def normalise_id(raw: Any, prefix: str, pattern: str, stem: str, taken: set[str]) -> str:
    """``raw`` when it matches ``pattern`` and is free, else a deterministic spelling that
    does: upper case, runs of other characters as ``-``, ``prefix-`` in front and (for
    invariants and gates) a three-digit number at the end, bumped past ids already taken.
    ``stem`` stands in for an id that is only a number."""
    text = str(raw).strip()
    if re.match(pattern, text) and text not in taken:
        taken.add(text)
        return text
    body = re.sub(r"[^A-Z0-9]+", "-", text.upper()).strip("-")
    if body == prefix or body.startswith(prefix + "-"):
        body = body[len(prefix) + 1 :]
    if prefix == "C":
        candidate = f"C-{body or stem}"
        if not re.match(pattern, candidate):
            raise PvImportError(("contract_id",), f"cannot make a contract id of {raw!r}")
        taken.add(candidate)
        return candidate
    match = re.fullmatch(r"(?:(?P<stem>.*?)-)?(?P<number>\d{1,3})", body)
    head, number = (match["stem"] or stem, int(match["number"])) if match else (body or stem, 1)
    while (candidate := f"{prefix}-{head}-{number:03d}") in taken:
        number += 1
        if number > 999:
            head, number = f"{head}-X", 1
    taken.add(candidate)
    return candidate


def mapping(value: Any, loc: Loc) -> dict[Any, Any]:
    """``value`` if it is a mapping, else a PvImportError at ``loc``."""
    if not isinstance(value, dict):
        raise PvImportError(loc, f"expected a mapping, got {value!r}")
    return value


def names(value: Any, loc: Loc) -> list[str]:
    """``value`` if it is a non-empty list of strings, else a PvImportError at ``loc``."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PvImportError(loc, f"expected a non-empty list of names, got {value!r}")
    return value


def number(value: Any, loc: Loc, *, integer: bool = False) -> int | float:
    """``value`` if it is a number (an integer when asked; never a bool), else an error."""
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool):
        raise PvImportError(
            loc, f"expected {'an integer' if integer else 'a number'}, got {value!r}"
        )
    return value


def flag(value: Any, loc: Loc) -> bool | None:
    """``value`` if it is a bool or absent (None), else a PvImportError at ``loc``."""
    if value is not None and not isinstance(value, bool):
        raise PvImportError(loc, f"expected true or false, got {value!r}")
    return value


def one_line(value: Any) -> str:
    """A pv prose field on one line."""
    return " ".join(str(value).split()) if value is not None else ""
