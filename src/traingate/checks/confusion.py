"""Confusion tripwires: the rate at which gold labels in A are predicted in B, per group.

Seed 001 pre-registered "per locale, city-start tokens mis-tagged as postcode < 1 % by 20k
steps" as the readout of the Saint-Albans collapse. A tripwire watches exactly the confusion
it names: city-start → postcode can read 0.00 % for a whole run while the collapse sends
city-start tokens to O. A contract therefore states both wires (A = {B-city}, B = {postcode
tags} and B = {O}), each one comparison of the worst group's rate against ``max_rate``.

Labels may be written as ids or, with ``label_names``, by name ("B-city", "O").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from traingate.checks.base import register
from traingate.checks.decision import CheckContext, Decision
from traingate.checks.liveness import TensorCheck, ValidationParams
from traingate.contract.thresholds import Threshold

if TYPE_CHECKING:
    from torch import Tensor


def unknown_label_names(labels: Sequence[int | str], names: Mapping[str, int] | None) -> list[str]:
    """The label names in ``labels`` that ``names`` does not define."""
    return [lab for lab in labels if isinstance(lab, str) and (names is None or lab not in names)]


def label_ids(labels: Sequence[int | str], names: Mapping[str, int] | None) -> list[int]:
    """Resolve labels written as ids or names (via ``names``) to ids."""
    missing = unknown_label_names(labels, names)
    if missing:
        raise ValueError(f"label(s) {missing} are not in label_names")
    return [
        names[lab] if isinstance(lab, str) and names is not None else int(lab) for lab in labels
    ]


def _describe(labels: Sequence[int | str]) -> str:
    return "{" + ", ".join(str(lab) for lab in labels) + "}"


class ConfusionRateParams(ValidationParams):
    """rate(gold ∈ ``from_labels`` → predicted ∈ ``to_labels``) at most ``max_rate``, over all
    positions or (``per_group``) in every group; ``label_names`` maps names to ids and
    ``group_names`` names group ids in messages (e.g. ``{US: 0, DE: 1}``)."""

    from_labels: list[int | str] = Field(min_length=1)
    to_labels: list[int | str] = Field(min_length=1)
    max_rate: Threshold
    per_group: bool = False
    label_names: dict[str, int] | None = None
    group_names: dict[str, int] | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> ConfusionRateParams:
        missing = unknown_label_names([*self.from_labels, *self.to_labels], self.label_names)
        if missing:
            raise ValueError(f"label(s) {missing} are not defined in label_names")
        return self


def check_confusion_rate(
    *, counts: Mapping[str, tuple[int, int]], params: ConfusionRateParams, context: CheckContext
) -> Decision | None:
    """Decide on ``counts``: group name → (hits, total), hits = #{gold ∈ A, predicted ∈ B},
    total = #{gold ∈ A}. Passes when the worst group's rate hits / total ≤ max_rate
    (equality passes).

    Groups with total 0 measured nothing and are skipped; when no group measured anything
    the answer is ``None`` (not evaluated), never a 0 % pass. ``metrics`` holds each group's
    ``rate/``, ``hits/`` and ``total/``.
    """
    for name, (hits, total) in counts.items():
        if not 0 <= hits <= total:
            raise ValueError(f"group {name}: {hits} hits out of {total} is not a count")
    measured = {name: ht for name, ht in sorted(counts.items()) if ht[1] > 0}
    if not measured:
        return None
    limit = context.resolve(params.max_rate)
    rates = {name: hits / total for name, (hits, total) in measured.items()}
    worst = max(rates, key=lambda name: rates[name])
    hits, total = measured[worst]
    metrics: dict[str, float] = {}
    for name, (h, t) in measured.items():
        metrics.update({f"rate/{name}": rates[name], f"hits/{name}": float(h)})
        metrics[f"total/{name}"] = float(t)
    where = f" in group {worst}" if params.per_group else ""
    return Decision.compare(
        rates[worst],
        "<=",
        limit,
        detail=f"{_describe(params.from_labels)} → {_describe(params.to_labels)}: "
        f"{rates[worst]:.2%} ({hits}/{total}){where}; limit {limit.value:.2%}",
        hint="gold tokens of the first set are predicted as the second: a cross-tag collapse "
        "(seed 001: a city's lead token bleeding into another span or into O)",
        metrics=metrics,
    )


@register
class ConfusionRate(TensorCheck[ConfusionRateParams]):
    """Counts A→B confusions per group; applies :func:`check_confusion_rate`.

    With ``per_group`` the validation must also hand ``groups`` (one id per position, aligned
    with ``labels``); a validation without them is an error, not a silent overall rate.
    """

    kind = "confusion_rate"
    params_model = ConfusionRateParams
    gather = ("predictions", "labels", "groups")
    optional = frozenset({"groups"})
    summary = "rate of gold-in-A predicted-in-B ≤ max_rate (worst group when per_group)"

    def observes(self) -> frozenset[str]:
        """Per-group rates need the group ids too."""
        return self.requires | {"groups"} if self.params.per_group else self.requires

    def update(self, observation: Mapping[str, Any]) -> None:
        if self.params.per_group and observation.get("groups") is None:
            raise KeyError(f"{self.kind} with per_group needs the validation observation 'groups'")
        super().update(observation)

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.confusion import confusion_rate

        p = self.params
        report = confusion_rate(
            data["predictions"],
            data["labels"],
            label_ids(p.from_labels, p.label_names),
            label_ids(p.to_labels, p.label_names),
            data.get("groups") if p.per_group else None,
        )
        if not p.per_group:
            counts = {"all": (report.overall.hits, report.overall.total)}
        else:
            display = {v: k for k, v in (p.group_names or {}).items()}
            counts = {display.get(g, str(g)): (c.hits, c.total) for g, c in report.by_group.items()}
        return check_confusion_rate(counts=counts, params=p, context=self.context)
