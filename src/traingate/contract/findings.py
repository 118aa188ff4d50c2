"""Findings: what validation reports, each with a stable code and a file:line:column.

Codes are stable across releases so CI filters and docs can name them; the table in
``CODES`` is the single list (README documents it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]

CODES: dict[str, str] = {
    "TG001": "file cannot be read or parsed as YAML",
    "TG100": "field has an invalid value",
    "TG101": "unknown key",
    "TG102": "required field is missing",
    "TG103": "duplicate key in a mapping",
    "TG104": "file is a contract in another format (pv): convert it with `contracts import`",
    "TG110": "version is not semver",
    "TG111": "changelog[0].version differs from version",
    "TG120": "unknown check kind",
    "TG121": "params invalid for the check kind",
    "TG122": "check kind cannot run at this point",
    "TG130": "formula syntax or forbidden construct",
    "TG131": "formula names an undeclared symbol",
    "TG132": "formula calls an unknown function",
    "TG133": "parameter declared but never used",
    "TG134": "regime-keyed threshold is missing a regime or names an unknown one",
    "TG135": "threshold or constant is not finite (inf, NaN, or beyond a float)",
    "TG136": "constant sub-expression overflows or cannot be evaluated",
    "TG140": "duplicate invariant or gate id",
    "TG141": "gate requires an unknown invariant",
    "TG150": "test id does not exist",
    "TG151": "invariant has no falsifier",
    "TG152": "invariant is required by no gate",
    "TG160": "no contracts found",
    "TG161": "duplicate contract id",
}


@dataclass(frozen=True)
class Finding:
    """One problem found in a contract, located as precisely as the input allows."""

    code: str
    severity: Severity
    message: str
    file: str
    line: int = 0
    column: int = 0
    field: str = ""

    def location(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file

    def text(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.location()}: {self.severity} {self.code}{where}: {self.message}"

    def github(self) -> str:
        level = "error" if self.severity == "error" else "warning"
        title = f"{self.code} {self.field}".strip()
        msg = self.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        where = f"file={self.file},line={self.line or 1},col={self.column or 1}"
        return f"::{level} {where},title={title}::{msg}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def field_path(loc: tuple[str | int, ...]) -> str:
    """``("invariants", 0, "params", "cap")`` → ``invariants[0].params.cap``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def suggest(word: str, choices: list[str]) -> str:
    """`` (did you mean `gates`?)`` for a near miss (or a prefix), else an empty string."""
    import difflib  # only a mistake needs it: a clean validation never imports it

    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close and isinstance(word, str):
        close = [c for c in choices if c.startswith(word) or word.startswith(c)][:1]
    return f" (did you mean `{close[0]}`?)" if close else ""
