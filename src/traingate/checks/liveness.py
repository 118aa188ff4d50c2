"""Liveness invariants: the model makes different predictions for different inputs.

Seed 002: a 56M-parameter fine-tune collapsed completely. Every validation sample had the
same pooled embedding to within bf16 rounding (max pairwise L2 0.020 at mean norm 6.98), the
classifier predicted one label on 100 % of 1500 samples, and MCL found one cluster at every
inflation. The project's liveness gate was "≥ 10 distinct predicted labels, ≥ 0.10 macro
F1, ≥ 3 MCL clusters at coarse inflation": deliberately undemanding, it tells a model from a
constant function. Each kind here is one of those comparisons.

The kinds decide on the tensors of one validation pass (``predictions``, ``labels``,
``embeddings``; see :class:`TensorCheck`), imported lazily so this module loads without torch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field

from traingate.checks.base import Check, CheckParams, Observation, register
from traingate.checks.decision import CheckContext, Decision
from traingate.contract.thresholds import Resolved, Threshold

if TYPE_CHECKING:
    from torch import Tensor

# Fields aligned per position (token or sample); ``embeddings`` has its own row count.
TOKEN_FIELDS = ("predictions", "labels", "probabilities", "groups")


class ValidationParams(CheckParams):
    """Params every validation-time tensor kind shares: validations before ``from_step`` (the
    loop's step count) or before ``from_epoch`` (0-based) are not judged, as in "the rate
    must be under 1 % by 20k steps"."""

    from_step: int = Field(default=0, ge=0)
    from_epoch: int = Field(default=0, ge=0)


VP = TypeVar("VP", bound=ValidationParams)


def is_judged(params: ValidationParams, step: int | None, epoch: int | None) -> bool:
    """Whether a validation at ``step`` and ``epoch`` is judged: both at or past their
    ``from_`` bounds. An unknown step (or epoch) is judged only when its bound is 0."""
    step_ok = params.from_step == 0 or (step is not None and step >= params.from_step)
    epoch_ok = params.from_epoch == 0 or (epoch is not None and epoch >= params.from_epoch)
    return step_ok and epoch_ok


def _flatten(name: str, value: Tensor) -> Tensor:
    """(B, T) predictions/labels/groups → (B·T,); (B, T, C) probabilities/embeddings → (B·T, C)."""
    if name in ("probabilities", "embeddings") and value.ndim >= 2:
        return value.reshape(-1, value.shape[-1])
    return value.reshape(-1)


class TensorCheck(Check[VP]):
    """A validation-time kind that decides on the concatenated tensors of one validation.

    ``update`` buffers the fields in ``gather`` (detached, on their device) and remembers the
    latest ``step``/``epoch``; ``verdict`` is ``None`` outside the judged window (see
    :func:`is_judged`), else it concatenates the buffers, drops positions whose gold label is
    negative (the ``-100`` padding convention), decides once and caches the decision. The
    first ``update`` after a verdict starts the next validation's buffer, so a Guard that calls
    update-then-verdict once per validation, and a loop that feeds many batches before one
    verdict, both work.

    A kind declares the fields it ``gather``s; all are required except those in
    ``optional`` (gathered when a loop hands them). A validation with fewer than
    ``min_rows`` rows of the first gathered field has nothing to measure: the verdict is
    ``None`` (not evaluated), not a pass.

    The state is empty (:class:`~traingate.checks.base.NoState`): the only state is the
    current validation's buffer, and a checkpoint is never taken between a validation's
    updates and its verdict.
    """

    points = frozenset({"validation"})
    gather: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[frozenset[str]] = frozenset()
    min_rows: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.requires = frozenset(cls.gather) - cls.optional

    @classmethod
    def first_decision(cls, params: CheckParams) -> int:
        """``from_epoch`` + 1: validations of epochs before ``from_epoch`` are not judged
        (:func:`is_judged`), and a loop numbers its validations 0, 1, … (the Guard's epochs),
        so the first judged one is validation number ``from_epoch`` + 1."""
        return cls.own(params).from_epoch + 1

    @classmethod
    def first_step(cls, params: CheckParams) -> int:
        """``from_step``: a validation at an earlier step is not judged (:func:`is_judged`)."""
        return cls.own(params).from_step

    def update(self, observation: Observation) -> None:
        if self._decided:
            self.reset()
        missing = sorted(self.requires - observation.keys())
        if missing:
            raise KeyError(f"{self.kind} needs the validation observation(s) {missing}")
        self._updates += 1
        self._step = observation.get("step")
        self._epoch = observation.get("epoch")
        for name in self.gather:
            value = observation.get(name)
            if value is not None:
                self._parts.setdefault(name, []).append(value.detach())

    def decide(self) -> Decision | None:
        if not (self._updates > 0 and is_judged(self.params, self._step, self._epoch)):
            return None
        data = self._collect()
        if data[self.gather[0]].shape[0] < self.min_rows:
            return None
        return self.decide_on(data)

    def verdict(self) -> Decision | None:
        if not self._decided:
            self.refresh()
            self._decided = True
        return super().verdict()

    def reset(self) -> None:
        self._parts: dict[str, list[Tensor]] = {}
        self._updates = 0
        self._step: int | None = None
        self._epoch: int | None = None
        self._decided = False
        super().reset()

    def _collect(self) -> dict[str, Tensor]:
        import torch

        data: dict[str, Tensor] = {}
        for name, parts in self._parts.items():
            if len(parts) != self._updates:
                raise ValueError(
                    f"{self.kind}: {name} came with {len(parts)} of {self._updates} updates"
                )
            data[name] = torch.cat([_flatten(name, p) for p in parts])
        aligned = {name: data[name] for name in TOKEN_FIELDS if name in data}
        sizes = {name: int(t.shape[0]) for name, t in aligned.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{self.kind}: per-position fields have different lengths {sizes}")
        if "labels" in data:
            keep = data["labels"] >= 0
            if not bool(keep.all()):
                data.update({name: t[keep] for name, t in aligned.items()})
        return data

    @abstractmethod
    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        """Decide on one validation's concatenated, filtered tensors."""


# -- distinct_predictions -----------------------------------------------------------------


class DistinctPredictionsParams(ValidationParams):
    """At least ``min_distinct`` distinct predicted labels, capped by the labels in gold."""

    min_distinct: Threshold


def check_distinct_predictions(
    *,
    distinct: int,
    labels_in_gold: int,
    params: DistinctPredictionsParams,
    context: CheckContext,
) -> Decision:
    """Passes when ``distinct`` ≥ min(min_distinct, ``labels_in_gold``) (equality passes).

    The cap keeps the gate honest on small label sets: a validation set with 5 gold classes
    cannot be asked for 10 distinct predictions.
    """
    asked = context.resolve(params.min_distinct)
    limit = min(asked.value, float(labels_in_gold))
    bound = Resolved(
        limit,
        f"min({asked.formula}, labels_in_gold)",
        f"min({asked.value:.6g}, {labels_in_gold}) = {limit:.6g}",
    )
    return Decision.compare(
        float(distinct),
        ">=",
        bound,
        detail=f"{distinct} distinct predicted label(s); {labels_in_gold} label(s) occur in gold; "
        f"limit {limit:.6g}",
        hint="the model predicts too few labels: mode-class collapse (seed 002 predicted one label "
        "for 100 % of inputs); check lr/warmup, the head's init and that it receives gradient",
        metrics={"labels_in_gold": float(labels_in_gold)},
    )


@register
class DistinctPredictions(TensorCheck[DistinctPredictionsParams]):
    """Counts distinct predicted and gold labels; applies :func:`check_distinct_predictions`."""

    kind = "distinct_predictions"
    params_model = DistinctPredictionsParams
    gather = ("predictions", "labels")
    summary = "distinct predicted labels ≥ min(min_distinct, labels present in gold)"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.liveness import distinct_labels

        return check_distinct_predictions(
            distinct=distinct_labels(data["predictions"]),
            labels_in_gold=distinct_labels(data["labels"]),
            params=self.params,
            context=self.context,
        )


# -- macro_f1 -----------------------------------------------------------------------------


class MacroF1Params(ValidationParams):
    """Macro F1 (over labels in gold or predictions) at least ``min_f1``."""

    min_f1: Threshold


def check_macro_f1(*, f1: float, params: MacroF1Params, context: CheckContext) -> Decision:
    """Passes when ``f1`` ≥ min_f1 (equality passes; NaN fails)."""
    limit = context.resolve(params.min_f1)
    return Decision.compare(
        f1,
        ">=",
        limit,
        detail=f"macro F1 {f1:.4f} vs minimum {limit.value:.4g}",
        hint="the predictions barely track the labels: a collapsed or untrained head (seed 002's "
        "liveness floor is 0.10)",
    )


@register
class MacroF1(TensorCheck[MacroF1Params]):
    """Computes macro F1 of one validation; applies :func:`check_macro_f1`."""

    kind = "macro_f1"
    params_model = MacroF1Params
    gather = ("predictions", "labels")
    summary = "macro F1 over the labels present ≥ min_f1"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.liveness import macro_f1

        f1 = macro_f1(data["predictions"], data["labels"])
        return check_macro_f1(f1=f1, params=self.params, context=self.context)


# -- prediction_share ---------------------------------------------------------------------


class PredictionShareParams(ValidationParams):
    """The most frequent predicted label covers at most ``max_share`` of the predictions."""

    max_share: Threshold


def check_prediction_share(
    *, share: float, top_label: int, params: PredictionShareParams, context: CheckContext
) -> Decision:
    """Passes when the top-1 ``share`` (of label ``top_label``) ≤ max_share (equality passes)."""
    limit = context.resolve(params.max_share)
    return Decision.compare(
        share,
        "<=",
        limit,
        detail=f"label {top_label} is {share:.1%} of the predictions; limit {limit.value:.1%}",
        hint="one label dominates the predictions: the model is close to a constant function "
        "(seed 002: one label on 100 % of samples)",
        metrics={"top_label": float(top_label)},
    )


@register
class PredictionShare(TensorCheck[PredictionShareParams]):
    """Finds the most frequent prediction; applies :func:`check_prediction_share`.

    ``labels`` are optional here: when given, positions with a negative gold label are dropped.
    """

    kind = "prediction_share"
    params_model = PredictionShareParams
    gather = ("predictions", "labels")
    optional = frozenset({"labels"})
    summary = "top-1 predicted label's share ≤ max_share"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.liveness import top1

        label, share = top1(data["predictions"])
        return check_prediction_share(
            share=share, top_label=label, params=self.params, context=self.context
        )


# -- embedding_collapse -------------------------------------------------------------------


class EmbeddingCollapseParams(ValidationParams):
    """max pairwise L2 / mean L2 norm of the embeddings at least ``min_ratio``."""

    min_ratio: Threshold


def check_embedding_collapse(
    *,
    ratio: float,
    effective_rank: float,
    params: EmbeddingCollapseParams,
    context: CheckContext,
    diameter: float | None = None,
    scale: float | None = None,
    diameter_upper: float | None = None,
) -> Decision:
    """Passes when the collapse ``ratio`` ≥ min_ratio (equality passes; NaN fails).

    ``effective_rank`` (RankMe) is reported in ``metrics``, never gated; ``diameter`` and
    ``scale`` (max pairwise L2, mean norm), when given, are reported too, and
    ``diameter_upper`` when the diameter was only bounded (``diameter`` then is the longest
    pair found, and ``ratio`` the bound on the side of the limit that decided).
    """
    limit = context.resolve(params.min_ratio)
    metrics = {"effective_rank": effective_rank}
    parts = ""
    if diameter is not None and scale is not None:
        metrics.update({"max_pairwise_distance": diameter, "mean_norm": scale})
        parts = f" (max pairwise L2 {diameter:.4g} / mean norm {scale:.4g})"
        if diameter_upper is not None:
            metrics["max_pairwise_distance_upper"] = diameter_upper
            bounds = f"[{diameter:.4g}, {diameter_upper:.4g}]"
            parts = f" (max pairwise L2 in {bounds} / mean norm {scale:.4g})"
    return Decision.compare(
        ratio,
        ">=",
        limit,
        detail=f"embedding spread ratio {ratio:.4g}{parts}, effective rank {effective_rank:.3g}; "
        f"minimum {limit.value:.4g}",
        hint="every input maps to nearly the same embedding: representation collapse (seed 002: "
        "0.020 / 6.98); a from-random head on sparse labels, lr too high, or a dead pooling",
        metrics=metrics,
    )


@register
class EmbeddingCollapse(TensorCheck[EmbeddingCollapseParams]):
    """Measures the embeddings' spread and RankMe; applies :func:`check_embedding_collapse`.

    Fewer than two embeddings have no spread to measure: the verdict is ``None``. The spread
    is measured only as far as the limit needs (:func:`~traingate.metrics.liveness.spread`
    with ``limit``: O(N·D) unless its bounds straddle the limit); the ratio decided on is the
    bound on the limit's side, which decides exactly as the exact ratio would.
    """

    kind = "embedding_collapse"
    params_model = EmbeddingCollapseParams
    gather = ("embeddings",)
    min_rows = 2
    summary = "max pairwise L2 / mean L2 norm of embeddings ≥ min_ratio"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.liveness import effective_rank, spread

        embeddings = data["embeddings"]
        limit = self.context.resolve(self.params.min_ratio).value
        measured = spread(embeddings, limit=limit)
        # below the limit only if provably so; otherwise the longest pair found decides
        ratio = measured.ratio_upper if measured.ratio_upper < limit else measured.ratio
        return check_embedding_collapse(
            ratio=ratio,
            effective_rank=effective_rank(embeddings),
            params=self.params,
            context=self.context,
            diameter=measured.diameter,
            scale=measured.scale,
            diameter_upper=measured.upper,
        )


# -- embedding_clusters -------------------------------------------------------------------


class EmbeddingClustersParams(ValidationParams):
    """At least ``min_clusters`` MCL clusters at ``inflation`` on the k-NN cosine graph of at
    most ``max_points`` embeddings (see :func:`traingate.metrics.liveness.mcl_clusters`)."""

    min_clusters: Threshold
    inflation: float = Field(default=1.4, gt=1.0, le=10.0)
    k: int = Field(default=10, ge=1, le=100)
    max_points: int = Field(default=600, ge=2, le=4096)


def check_embedding_clusters(
    *,
    clusters: int,
    params: EmbeddingClustersParams,
    context: CheckContext,
    points: int | None = None,
) -> Decision:
    """Passes when ``clusters`` ≥ min_clusters (equality passes)."""
    limit = context.resolve(params.min_clusters)
    sampled = f" of {points} embeddings" if points is not None else ""
    return Decision.compare(
        float(clusters),
        ">=",
        limit,
        detail=f"{clusters} MCL cluster(s){sampled} at inflation {params.inflation:g} "
        f"(k = {params.k}); minimum {limit.value:.6g}",
        hint="the embedding space has (almost) no structure: all inputs fall in one group "
        "(seed 002's collapse gave one cluster at every inflation)",
        metrics={} if points is None else {"points": float(points)},
    )


@register
class EmbeddingClusters(TensorCheck[EmbeddingClustersParams]):
    """Runs MCL on one validation's embeddings; applies :func:`check_embedding_clusters`."""

    kind = "embedding_clusters"
    params_model = EmbeddingClustersParams
    gather = ("embeddings",)
    summary = "MCL clusters of embeddings (k-NN cosine graph) at inflation ≥ min_clusters"

    def decide_on(self, data: Mapping[str, Tensor]) -> Decision | None:
        from traingate.metrics.liveness import mcl_clusters

        clusters, points, _ = mcl_clusters(
            data["embeddings"], self.params.inflation, self.params.k, self.params.max_points
        )
        return check_embedding_clusters(
            clusters=clusters, params=self.params, context=self.context, points=points
        )
