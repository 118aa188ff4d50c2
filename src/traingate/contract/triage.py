"""What ``contracts validate`` says first about a file in another format, and repeated
findings folded into one line.

A pv-format contract (``contract_id``, no ``contract``) fails on nearly every field: one
finding, shown first, names the format and the command that converts it. Text output then
groups findings that repeat across entries (one file, code and severity, the field with its
indices written ``[*]``, the message with its ids masked), so a wall of 148 lines becomes a
dozen, each with its count and first locations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from traingate.contract.findings import Finding

FOREIGN_CODE = "TG104"
GROUP_AT = 3  # a finding repeated this often (or more) is shown once, with a count
SHOWN = 3  # locations listed on a grouped line
_INDEX = re.compile(r"\[\d+\]")
_IDS = re.compile(r"\b(?:INV|GATE|DEC)-[A-Z0-9]+(?:-[A-Z0-9]+)*\b")


def foreign_format(data: Any, display: str) -> Finding | None:
    """The pointer finding for a pv-format contract (``contract_id`` and no ``contract``),
    else None. It has no line, so it sorts before every located finding of its file."""
    if not isinstance(data, dict) or "contract" in data or "contract_id" not in data:
        return None
    signs = ["contract_id"]
    meta = data.get("metadata")
    if isinstance(meta, dict) and "changelog" in meta:
        signs.append("metadata.changelog")
    message = (
        f"this looks like a pv-format contract ({', '.join(signs)}); convert it with "
        f"`contracts import {display} --from pv`"
    )
    return Finding(FOREIGN_CODE, "error", message, display)


@dataclass(frozen=True)
class FindingGroup:
    """Findings alike but for where they are: the first, all of them, the shared field."""

    members: tuple[Finding, ...]
    field: str

    def text(self) -> str:
        """One line: the first finding, or (grouped) the first with a count and locations."""
        first = self.members[0]
        if len(self.members) == 1:
            return first.text()
        where = ", ".join(f"{f.line}:{f.column}" for f in self.members[:SHOWN])
        more = ", …" if len(self.members) > SHOWN else ""
        return (
            f"{first.location()}: {first.severity} {first.code} [{self.field}]: "
            f"{first.message} ({len(self.members)} findings like it, at {where}{more})"
        )


def group_findings(findings: Sequence[Finding], at_least: int = GROUP_AT) -> list[FindingGroup]:
    """``findings`` in their order, those repeated ``at_least`` times folded into one group
    (at the place of the first); the rest one group each."""
    keyed: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        key = (f.file, f.code, f.severity, _INDEX.sub("[*]", f.field), _IDS.sub("…", f.message))
        keyed.setdefault(key, []).append(f)
    out: list[FindingGroup] = []
    for key, members in keyed.items():
        if len(members) >= at_least:
            out.append(FindingGroup(tuple(members), key[3]))
        else:
            out.extend(FindingGroup((f,), f.field) for f in members)
    order = {id(f): i for i, f in enumerate(findings)}
    return sorted(out, key=lambda g: order[id(g.members[0])])
