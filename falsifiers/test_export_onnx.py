"""Falsifiers for C-EXPORT-ONNX INV-EXPORT-001 (ONNX parity ≤ 1e-4 in fp32)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from traingate.checks.decision import CheckContext
from traingate.checks.expression import check_expression
from traingate.contract.regime import Finetune
from traingate.contract.shipped import invariant

PARAMS = invariant("INV-EXPORT-001").params
BOUND = 1e-4


@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_parity_bound_is_1e_minus_4(diff: float) -> None:
    decision = check_expression(
        metric_values={"onnx_max_abs_diff": diff}, params=PARAMS, context=CheckContext(Finetune())
    )
    assert decision is not None
    assert decision.ok == (diff <= BOUND)
    assert check_expression(
        metric_values={"onnx_max_abs_diff": BOUND}, params=PARAMS, context=CheckContext(Finetune())
    ).ok  # type: ignore[union-attr]
    above = math.nextafter(BOUND, 1.0)
    assert not check_expression(
        metric_values={"onnx_max_abs_diff": above}, params=PARAMS, context=CheckContext(Finetune())
    ).ok  # type: ignore[union-attr]


@given(st.sampled_from([math.nan, math.inf]))
def test_missing_parity_is_not_a_pass(bad: float) -> None:
    assert (
        check_expression(metric_values={}, params=PARAMS, context=CheckContext(Finetune())) is None
    )  # never measured: not evaluated
    decision = check_expression(
        metric_values={"onnx_max_abs_diff": bad}, params=PARAMS, context=CheckContext(Finetune())
    )
    assert decision is not None and not decision.ok


def test_real_tiny_model_export_meets_parity(tmp_path) -> None:
    """Evidence: the tiny preset exported by the trainer's code meets the bound."""
    from traingate.train.model import build_model
    from traingate.train.onnx_export import export_onnx, onnx_parity

    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=257)
    path = export_onnx(model, tmp_path / "m.onnx", model.config.block_size, 257)
    batches = [torch.randint(0, 257, (1, n)) for n in (5, model.config.block_size)]
    diff = onnx_parity(model, path, batches)
    decision = check_expression(
        metric_values={"onnx_max_abs_diff": diff}, params=PARAMS, context=CheckContext(Finetune())
    )
    assert decision is not None and decision.ok, decision
