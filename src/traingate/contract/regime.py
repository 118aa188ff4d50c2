"""Training regimes: the one fact a threshold may depend on besides run parameters.

A from-scratch run starts at uniform-random cross-entropy ln(V); a finetune starts from
weights that already model the data. Thresholds keyed by regime (``finetune:`` /
``from_scratch:``) resolve against the regime handed to the Guard.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

RegimeName = Literal["finetune", "from_scratch"]
REGIME_NAMES: tuple[RegimeName, ...] = ("finetune", "from_scratch")
# built on first use (defer_build): ``contracts validate`` never makes a regime
_REGIME_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class Finetune(BaseModel):
    """Weights come from a checkpoint: the model should already beat chance."""

    model_config = _REGIME_CONFIG
    kind: Literal["finetune"] = "finetune"

    def symbols(self) -> dict[str, float]:
        """Values this regime supplies to formulas (none for finetune)."""
        return {}


class FromScratch(BaseModel):
    """Random initialisation over a vocabulary of ``vocab_size`` tokens (cold start ≈ ln V)."""

    model_config = _REGIME_CONFIG
    kind: Literal["from_scratch"] = "from_scratch"
    vocab_size: int = Field(ge=2)

    def __init__(self, vocab_size: int | None = None, /, **data: Any) -> None:
        if vocab_size is not None:
            data["vocab_size"] = vocab_size
        super().__init__(**data)

    def symbols(self) -> dict[str, float]:
        """``vocab_size`` is available to every formula evaluated under this regime."""
        return {"vocab_size": float(self.vocab_size)}


TrainingRegime = Annotated[Finetune | FromScratch, Field(discriminator="kind")]


@cache
def _regime_adapter() -> TypeAdapter[Finetune | FromScratch]:
    """Built on first use: ``contracts validate`` never parses a regime, so it never pays."""
    return TypeAdapter(TrainingRegime)


def parse_regime(data: Any) -> Finetune | FromScratch:
    """Build a regime from its tagged form, e.g. ``{"kind": "from_scratch", "vocab_size": 8}``."""
    return _regime_adapter().validate_python(data)


def regime_from_cli(name: str, vocab_size: int | None) -> Finetune | FromScratch:
    """Map a CLI spelling (``finetune`` / ``from-scratch``) to a regime."""
    key = name.replace("-", "_")
    if key == "finetune":
        return Finetune()
    if key == "from_scratch":
        if vocab_size is None:
            raise ValueError("the from-scratch regime needs vocab_size (--param vocab_size=N)")
        return FromScratch(vocab_size)
    raise ValueError(f"unknown regime {name!r}: expected finetune or from-scratch")
