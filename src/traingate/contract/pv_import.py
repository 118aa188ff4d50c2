"""``contracts import --from pv``: a pv-format contract as a traingate contract, and one row
per source id saying what became of it.

Pure (data in, data out): :func:`import_pv` takes the parsed pv YAML and returns the
traingate contract as plain data plus the rows the command prints. Nothing is invented. A
rule or threshold written only in prose is not imported: it is listed, marked ``DRAFT
(needs a human)``, in the contract's description. Structured blocks map onto kinds
(``per_step_metrics`` → metrics_present; ``convergence`` → convergence at validation,
on_violation stop, and its final target; ``no_placeholder``/``placeholder`` →
no_placeholder with the forbidden values as its fingerprint) and ``hyperparameter_defaults``
onto the contract's ``modes``. A gate is imported when every entry of its
``evidence_required`` that names a pv invariant or block was imported; its
``ship_blocking`` is copied, or (pv gives none) false and marked for review; its evidence
that is not a pytest id of this project is kept as ``external_evidence``. The contract is
``status: draft`` whenever anything needs a human, which includes every imported invariant
until it names a traingate falsifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from traingate.contract.fields import TEST_ID
from traingate.contract.pv_mapping import (
    DRAFT,
    MODE_KEYS,
    STATUSES,
    Loc,
    PvImportError,
    Row,
    RowStatus,
    changelog_entry,
    flag,
    mapping,
    metric_name,
    names,
    normalise_id,
    number,
    observation_names,
    one_line,
    renames,
    semver_key,
    version_text,
)
from traingate.contract.regime import REGIME_NAMES
from traingate.contract.schema import CONTRACT_ID, GATE_ID, INVARIANT_ID, MODE_NAME

BLOCKS = ("per_step_metrics", "convergence", "no_placeholder", "placeholder")
BLOCKS += ("hyperparameter_defaults",)
TOP_KEYS = frozenset(
    {"contract_id", "metadata", "version", "title", "name", "description", "status"}
    | {"changelog", "invariants", "gates"}
)
NO_FALSIFIER = "no traingate falsifier yet: name one in falsified_by before status: active"
MODE_FIELDS = ("regime", "lr", "warmup", "target_val_loss")
PROSE = ("description", "falsifier", "severity")  # what a pv invariant says, kept as text
META_KEYS = frozenset({"version", "title", "name", "description", "status", "changelog"})


@dataclass
class Imported:
    """The traingate contract (plain data, in file order) and one row per source id."""

    contract: dict[str, Any]
    rows: list[Row]

    def needs_human(self) -> list[Row]:
        """The rows a person has to look at (imported as a draft, or not imported)."""
        return needing_human(self.rows)


def needing_human(rows: list[Row]) -> list[Row]:
    """The rows imported as a draft or not imported."""
    return [row for row in rows if row.status != "mapped"]


def import_pv(data: Any, *, resolves: Callable[[str], bool] = lambda _: False) -> Imported:
    """Map a parsed pv contract; ``resolves(test_id)`` says whether a pytest id names a test
    of this project (those become ``evidence``; every other reference stays external).
    Raises PvImportError naming the pv field that cannot be read."""
    if not isinstance(data, dict) or "contract_id" not in data:
        raise PvImportError((), "not a pv contract: no top-level `contract_id`")
    return _Mapper(data, resolves).run()


@dataclass
class _Mapper:
    """One import's state: the ids taken, what was imported and what was not."""

    data: dict[Any, Any]
    resolves: Callable[[str], bool]
    taken: set[str] = field(default_factory=set)
    rows: list[Row] = field(default_factory=list)
    invariants: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_imported: list[str] = field(default_factory=list)
    block_ids: dict[str, list[str]] = field(default_factory=dict)
    stem: str = "PV"

    def run(self) -> Imported:
        """The whole mapping: header, blocks, invariants, gates, then the status they imply."""
        data = self.data
        meta = mapping(data.get("metadata", {}), ("metadata",))

        def first(key: str) -> tuple[Any, Loc]:
            return (meta[key], ("metadata", key)) if key in meta else (data.get(key), (key,))

        raw_id = data["contract_id"]
        cid = normalise_id(raw_id, "C", CONTRACT_ID, "PV", self.taken)
        self.stem = cid.removeprefix("C-")
        version, vloc = first("version")
        if version is None:
            raise PvImportError(("metadata", "version"), "required field is missing")
        version = version_text(version, vloc)
        changelog = self.changelog(*first("changelog"), version)
        self.blocks()
        self.pv_invariants(data.get("invariants", []))
        self.pv_gates(data.get("gates", []))
        for key in data:
            if key not in TOP_KEYS and key not in BLOCKS:
                self.skip(str(key), f"pv block `{key}` has no traingate mapping")
        title = first("title")[0] or first("name")[0] or raw_id
        status = self.status(*first("status"), raw_id, cid)
        contract: dict[str, Any] = {
            "contract": cid,
            "version": version,
            "title": one_line(title),
            "status": status,
            "description": self.description(first("description")[0], raw_id, cid, version),
            "changelog": changelog,
        }
        if self.modes:
            contract["modes"] = self.modes
        if self.invariants:
            contract["invariants"] = self.invariants
        if self.gates:
            contract["gates"] = self.gates
        return Imported(contract, self.rows)

    def changelog(self, entries: Any, loc: Loc, version: str) -> list[dict[str, Any]]:
        """The entries, newest first; the newest must be the contract's version."""
        if not isinstance(entries, list) or not entries:
            raise PvImportError(loc, "expected a non-empty list of changelog entries")
        parsed = [changelog_entry(entry, (*loc, i)) for i, entry in enumerate(entries)]
        parsed.sort(key=lambda e: semver_key(e["version"]), reverse=True)
        if parsed[0]["version"] != version:
            raise PvImportError(
                loc, f"no entry for version {version} (the newest is {parsed[0]['version']})"
            )
        return parsed

    def status(self, raw: Any, loc: Loc, raw_id: Any, cid: str) -> str:
        """pv's status, or draft when anything needs a human (say why in the contract's row)."""
        given = STATUSES.get(str(raw).upper()) if raw is not None else "draft"
        if given is None:
            raise PvImportError(loc, f"status {raw!r} is not one of {', '.join(STATUSES)}")
        human = len(needing_human(self.rows))
        bare = sum(1 for inv in self.invariants if not inv.get("falsified_by"))
        reasons = [f"{human} entries need a human"] if human else []
        reasons += [f"{bare} invariants name no traingate falsifier"] if bare else []
        status = "draft" if reasons else given
        shown = f"pv status {raw}" if raw is not None else "pv gives no status"
        note = f"{shown}; imported as {status}" + (f": {', '.join(reasons)}" if reasons else "")
        if str(raw_id) != cid:
            note += f"; id normalised from {raw_id!r}"
        dropped = [str(k) for k in mapping(self.data.get("metadata", {}), ()) if k not in META_KEYS]
        if dropped:
            note += f"; metadata not imported: {', '.join(dropped)}"
        mapped = status == given and str(raw_id) == cid
        self.rows.insert(0, Row(str(raw_id), "mapped" if mapped else "draft", note, cid))
        return status

    def description(self, prose: Any, raw_id: Any, cid: str, version: str) -> str:
        """pv's description, where it came from, and the list of what was not imported."""
        head = f"Imported from pv contract {raw_id} {version} by `contracts import --from pv`."
        if str(raw_id) != cid:
            head += f" Original id: {raw_id}."
        parts = [p for p in (str(prose).strip() if prose else "", head) if p]
        if self.not_imported:
            parts.append(f"{DRAFT}, not imported:\n" + "\n".join(self.not_imported))
        return "\n\n".join(parts)

    def skip(self, source: str, why: str, detail: str = "") -> None:
        """A source entry not imported: a row, and a line in the contract's description."""
        self.rows.append(Row(source, "skipped", why))
        self.not_imported.append(f"- {source}: {why}" + (f". {detail}" if detail else ""))

    def invariant(
        self,
        block: str,
        suffix: str,
        title: str,
        spec: tuple[str, str, dict[str, Any], str],
        about: str,
        unmapped: list[str],
    ) -> str:
        """Add the invariant a block maps to; returns its id. ``spec``: check, at, params,
        on_violation."""
        check, at, params, on_violation = spec
        inv_id = normalise_id(f"INV-{self.stem}-{suffix}-001", "INV", INVARIANT_ID, "", self.taken)
        if unmapped:
            title = f"{DRAFT}: {title}"
            about += f" pv also says {', '.join(unmapped)}, which is not imported."
        self.invariants.append(
            {
                "id": inv_id,
                "title": title,
                "description": f"From pv `{block}`. {about} ({NO_FALSIFIER}.)",
                "check": check,
                "at": at,
                "params": params,
                "on_violation": on_violation,
            }
        )
        self.block_ids.setdefault(block, []).append(inv_id)
        return inv_id

    def blocks(self) -> None:
        """Map every structured block the file has, in a fixed order (so ids are stable)."""
        for name, read in (
            ("per_step_metrics", self.metrics),
            ("convergence", self.convergence),
            ("no_placeholder", self.placeholder),
            ("placeholder", self.placeholder),
            ("hyperparameter_defaults", self.hyperparameters),
        ):
            if name in self.data:
                read(name, mapping(self.data[name], (name,)))

    def extra(self, block: dict[Any, Any], known: set[str]) -> list[str]:
        """The block's keys nothing maps, as ``key: value`` text for the draft note."""
        return [f"{k}: {block[k]!r}" for k in block if k not in known]

    def row(self, source: str, status: RowStatus, notes: list[str], target: str) -> None:
        """Record what ``source`` became (empty notes dropped)."""
        self.rows.append(Row(source, status, "; ".join(n for n in notes if n), target))

    def metrics(self, name: str, block: dict[Any, Any]) -> None:
        """``per_step_metrics`` → metrics_present (forbid_null false: not imported)."""
        required = names(block.get("required"), (name, "required"))
        forbid = flag(block.get("forbid_null"), (name, "forbid_null"))
        if forbid is False:
            self.skip(
                name,
                "forbid_null: false — traingate's metrics_present refuses a null or NaN metric, "
                "pv allows one: no kind states that",
                f"required: {required}",
            )
            return
        observations = observation_names(required)
        unmapped = self.extra(block, {"required", "forbid_null"})
        if forbid is None:
            unmapped.append("nothing of null values (metrics_present refuses null and NaN)")
        about = f"Every step carries {', '.join(observations)}, none null or NaN."
        title = "Every per-step metric is present and finite"
        spec = ("metrics_present", "step", {"observations": observations}, "abort")
        inv_id = self.invariant(name, "METRICS", title, spec, about, unmapped)
        notes = [f"metrics_present {observations}", renames(required), *unmapped]
        self.row(name, "draft" if unmapped else "mapped", notes, inv_id)

    def convergence(self, name: str, block: dict[Any, Any]) -> None:
        """``convergence`` → patience at validation (stop) and the target at final."""
        loc: Loc = (name,)
        unmapped = self.extra(block, {"patience", "min_epochs", "min_delta", "target_val_loss"})
        made, notes = [], []
        if "patience" in block:
            params: dict[str, Any] = {
                k: number(block[k], (*loc, k), integer=k != "min_delta")
                for k in ("patience", "min_epochs", "min_delta")
                if k in block
            }
            about = (
                f"The val loss sets a new best within {params['patience']} validations or the "
                "run stops early and cleanly (on_violation stop)."
            )
            title = f"A new best val loss within {params['patience']} validations"
            spec = ("convergence", "validation", params, "stop")
            made.append(self.invariant(name, "CONV", title, spec, about, unmapped))
            absent = [k for k in ("min_epochs", "min_delta") if k not in block]
            notes.append(f"patience {params['patience']}, on_violation stop")
            if absent:
                notes.append(f"{'/'.join(absent)} absent: traingate's 0 (no minimum) applies")
        else:
            notes.append("no patience: not imported (traingate's default is never assumed)")
        if "target_val_loss" in block:
            target = number(block["target_val_loss"], (*loc, "target_val_loss"))
            about = f"The final val loss is at most {target}."
            spec = ("convergence", "final", {"target_val_loss": target}, "abort")
            title = f"The final val loss reaches {target}"
            made.append(self.invariant(name, "CONV", title, spec, about, unmapped))
            notes.append(f"final target {target}, on_violation abort")
        else:
            notes.append("no target_val_loss: no final target imported")
        if not made:
            self.skip(name, "; ".join(notes))
            return
        exact = "patience" in block and "target_val_loss" in block and not unmapped
        self.row(name, "mapped" if exact else "draft", [*notes, *unmapped], ", ".join(made))

    def placeholder(self, name: str, block: dict[Any, Any]) -> None:
        """``no_placeholder``/``placeholder`` → no_placeholder (no window: not imported)."""
        loc: Loc = (name,)
        if "window" not in block:
            self.skip(name, "no window: not imported (traingate's default 5 is never assumed)")
            return
        params: dict[str, Any] = {"window": number(block["window"], (*loc, "window"), integer=True)}
        notes = []
        if "observations" in block:
            listed = names(block["observations"], (*loc, "observations"))
            params["observations"] = observation_names(listed)
        else:
            notes.append("observations: traingate's [loss, grad_norm]")
        forbidden = mapping(block.get("forbidden_values", {}), (*loc, "forbidden_values"))
        fingerprint = {
            metric_name(str(k)): number(v, (*loc, "forbidden_values", k))
            for k, v in forbidden.items()
        }
        if fingerprint:
            params = {**params, "fingerprint": fingerprint}
            notes += [f"fingerprint {fingerprint}", renames(forbidden)]
        unmapped = self.extra(block, {"window", "observations", "forbidden_values"})
        about = f"No observation repeats exactly for {params['window']} consecutive steps" + (
            f", and the placeholder {fingerprint} never holds that long." if fingerprint else "."
        )
        title = "No constant placeholder metrics"
        spec = ("no_placeholder", "step", params, "abort")
        inv_id = self.invariant(name, "PLACEHOLDER", title, spec, about, unmapped)
        self.row(name, "draft" if unmapped else "mapped", [*notes, *unmapped], inv_id)

    def hyperparameters(self, name: str, block: dict[Any, Any]) -> None:
        """``hyperparameter_defaults`` → ``modes``, one row per mode holding all four fields."""
        for mode_key, raw_row in block.items():
            loc: Loc = (name, mode_key)
            source = f"{name}.{mode_key}"
            values = mapping(raw_row, loc)
            mode = re.sub(r"[^a-z0-9]+", "-", str(mode_key).lower()).strip("-")
            if not re.match(MODE_NAME, mode):
                raise PvImportError(loc, f"cannot make a mode name of {mode_key!r}")
            row: dict[str, Any] = {}
            unmapped, notes = [], []
            for key, value in values.items():
                if key in MODE_KEYS:
                    row[MODE_KEYS[key]] = value
                    if MODE_KEYS[key] != key:
                        notes.append(f"{key} → {MODE_KEYS[key]}")
                else:
                    unmapped.append(f"{key}={value!r}")
            regime = str(row.get("regime", mode_key)).replace("-", "_").lower()
            if regime not in REGIME_NAMES:
                why = f"no traingate regime ({', '.join(REGIME_NAMES)}) for mode {mode_key!r}"
                self.skip(source, why, f"row: {values}")
                continue
            if "regime" not in row:
                notes.append(f"regime {regime} from the mode's name")
            row["regime"] = regime
            missing = [k for k in MODE_FIELDS if k not in row]
            if missing:
                why = f"no {', '.join(missing)}: a mode row sets all four, none is assumed"
                self.skip(source, why, f"row: {values}")
                continue
            number(row["lr"], (*loc, "lr"))
            number(row["warmup"], (*loc, "warmup"), integer=True)
            number(row["target_val_loss"], (*loc, "target_val_loss"))
            out = {k: row[k] for k in (*MODE_FIELDS, "description") if k in row}
            if unmapped:
                said = f"{DRAFT}: pv also sets {', '.join(unmapped)}, which a mode row cannot hold"
                out["description"] = f"{said}. {out.get('description', '')}".strip()
                notes.append(said.removeprefix(f"{DRAFT}: "))
            self.modes[mode] = out
            self.row(source, "draft" if unmapped else "mapped", notes, f"modes.{mode}")

    def pv_invariants(self, entries: Any) -> None:
        """pv's prose invariants: never imported, each listed with its prose and falsifier."""
        if not isinstance(entries, list):
            raise PvImportError(("invariants",), f"expected a list, got {entries!r}")
        for i, entry in enumerate(entries):
            entry = mapping(entry, ("invariants", i))
            if "id" not in entry:
                raise PvImportError(("invariants", i, "id"), "required field is missing")
            title = one_line(entry.get("title") or entry.get("name"))
            said = "; ".join(f"{k} (pv): {one_line(entry[k])}" for k in PROSE if k in entry)
            why = "rule in prose only: no check kind states it exactly"
            self.skip(str(entry["id"]), why, "; ".join(p for p in (title, said) if p))

    def pv_gates(self, entries: Any) -> None:
        """pv's gates: imported when every invariant or block they name was imported."""
        if not isinstance(entries, list):
            raise PvImportError(("gates",), f"expected a list, got {entries!r}")
        prose_ids = {
            str(e.get("id")) for e in self.data.get("invariants", []) if isinstance(e, dict)
        }
        for g, entry in enumerate(entries):
            loc: Loc = ("gates", g)
            entry = mapping(entry, loc)
            if "id" not in entry:
                raise PvImportError((*loc, "id"), "required field is missing")
            raw = str(entry["id"])
            blocking = flag(entry.get("ship_blocking"), (*loc, "ship_blocking"))
            needed = entry.get("evidence_required", [])
            needed = names(needed, (*loc, "evidence_required")) if needed else []
            requires, missing, prose = [], [], []
            for item in needed:
                if item in self.block_ids:
                    requires += self.block_ids[item]
                elif item in prose_ids or item in BLOCKS:
                    missing.append(item)
                else:
                    prose.append(item)
            title = " — ".join(
                one_line(entry[k]) for k in ("title", "name", "rule") if entry.get(k)
            )
            if missing or not requires:
                why = (
                    f"requires {', '.join(missing)}, not imported"
                    if missing
                    else "names no imported invariant or block in evidence_required"
                )
                shown = {True: "ship-blocking", False: "advisory", None: "ship_blocking not given"}
                self.skip(raw, why, f"{shown[blocking]}; {title}; evidence_required: {needed}")
                continue
            self.gate(entry, loc, raw, title, (list(dict.fromkeys(requires)), prose), blocking)

    def gate(
        self,
        entry: dict[Any, Any],
        loc: Loc,
        raw: str,
        title: str,
        needs: tuple[list[str], list[str]],
        blocking: bool | None,
    ) -> None:
        """Add one gate whose required invariants were all imported."""
        requires, prose = needs
        gid = normalise_id(raw, "GATE", GATE_ID, self.stem, self.taken)
        cited = entry.get("evidence_discharged_by", [])
        cited = names(cited, (*loc, "evidence_discharged_by")) if cited else []
        evidence, external = [], []
        for ref in cited:
            tid = ref.removeprefix("pytest ").strip()
            ok = re.match(TEST_ID, tid) is not None and self.resolves(tid)
            (evidence if ok else external).append(tid if ok else ref)
        notes, drafts = [], []
        if gid != raw:
            notes.append(f"id normalised from {raw!r}")
            title = f"{title} (pv id {raw})" if title else f"pv gate {raw}"
        if blocking is None:
            drafts.append("ship_blocking not given: false until reviewed, never invented")
        if prose:
            drafts.append(f"evidence_required also names {prose}, which traingate cannot check")
        if external:
            notes.append(f"{len(external)} external evidence (never run, never discharged)")
        dropped = [f"{k} {entry[k]}" for k in ("verdict", "discharge_status") if k in entry]
        if dropped:
            notes.append(f"{', '.join(dropped)} not imported: `contracts verify` derives it")
        if drafts:
            title = f"{DRAFT}: {'; '.join(drafts)}. {title}".strip()
        gate: dict[str, Any] = {"id": gid, "title": title or gid, "requires": requires}
        gate["ship_blocking"] = bool(blocking)
        if evidence:
            gate["evidence"] = evidence
        if external:
            gate["external_evidence"] = external
        self.gates.append(gate)
        self.row(raw, "draft" if drafts else "mapped", [*drafts, *notes], gid)
