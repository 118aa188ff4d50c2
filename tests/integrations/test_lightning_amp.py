"""TraingateCallback under 16-bit AMP: a GradScaler-skipped step is a skip, not a violation.

``Trainer(precision="16-mixed")`` on a CPU accelerator is turned into ``"bf16-mixed"`` by
Lightning 2.6 (no scaler), so these runs pass the plugin itself:
``MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", ...))`` is real fp16
autocast on CPU with a real GradScaler. The overflow is real too: an initial loss scale of
2^40 overflows the fp16 backward, the scaler finds inf/NaN gradients after unscaling and
skips ``optimizer.step()``. ``backoff_factor`` decides how long that lasts: 2^-30 brings the
scale to 2^10 after one skip; 0.99 keeps it overflowing on every step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")

import torch
from lightning.pytorch.plugins import MixedPrecision

from traingate.ci.runcheck import check_run
from traingate.runtime.guard import InvariantViolation
from traingate.runtime.verdict import load_verdict

from .test_lightning import BATCHES, CONTRACT, TinyMLP, evaluations, fit, gate

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]


def fp16(backoff_factor: float) -> MixedPrecision:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40, backoff_factor=backoff_factor)
    return MixedPrecision("16-mixed", "cpu", scaler=scaler)


def step_values(gated, name: str) -> dict[int, float]:
    m = gated.guard.metrics
    return {
        s: v
        for p, s, n, v in zip(m.point, m.step, m.name, m.value, strict=True)
        if p == "step" and n == name
    }


def test_one_overflow_step_is_skipped_and_the_run_passes(tmp_path: Path) -> None:
    gated = gate(tmp_path / "run")
    t = fit(tmp_path, TinyMLP(), [gated], plugins=[fp16(2.0**-30)])
    assert t.precision_plugin.scaler.get_scale() == 2.0**10  # the scaler did skip one step
    assert step_values(gated, "overflow_skipped") == {0: 1.0}
    norms = step_values(gated, "grad_norm")
    assert 0 not in norms and len(norms) == 2 * BATCHES - 1  # the skipped step has no norm
    assert all(torch.isfinite(torch.tensor(list(norms.values()))))
    assert gated.skips.count == 0  # reset by the next healthy step
    assert evaluations(tmp_path / "run") == {
        "INV-TRAIN-001": (2 * BATCHES, 0),  # the skipped step's loss is still checked
        "INV-TRAIN-002": (2 * BATCHES - 1, 0),
        "INV-TRAIN-005": (2, 0),
    }
    check = check_run(tmp_path / "run", [CONTRACT])
    assert check.ok, check.problems


@pytest.mark.parametrize("limit", [0, 3])
def test_more_overflows_in_a_row_than_the_limit_abort(tmp_path: Path, limit: int) -> None:
    gated = gate(tmp_path / "run", max_overflow_skips=limit)
    model = TinyMLP()
    with pytest.raises(InvariantViolation) as caught:
        fit(tmp_path, model, [gated], plugins=[fp16(0.99)])
    violation = caught.value
    assert (violation.invariant_id, violation.step) == ("INV-TRAIN-001", limit)
    assert "grad_norm" in str(violation)
    assert step_values(gated, "overflow_skipped") == {s: 1.0 for s in range(limit)}
    for before, after in zip(TinyMLP().parameters(), model.parameters(), strict=True):
        assert torch.equal(before, after.detach())  # no step, skipped or aborted, applied
    verdict = load_verdict(tmp_path / "run")
    assert verdict.aborted_by is not None and verdict.aborted_by.invariant == "INV-TRAIN-001"
    assert verdict.crashed is None
    assert not check_run(tmp_path / "run").ok


def test_a_disabled_scaler_skips_nothing_so_inf_gradients_are_a_violation(
    tmp_path: Path,
) -> None:
    model = TinyMLP()
    model.net[0].weight.register_hook(lambda g: g * float("inf"))  # finite loss, inf grads
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(InvariantViolation) as caught:
        fit(tmp_path, model, [gate(tmp_path / "run")], plugins=[plugin])
    assert (caught.value.invariant_id, caught.value.step) == ("INV-TRAIN-001", 0)
    assert "grad_norm" in str(caught.value)


def test_max_overflow_skips_must_not_be_negative() -> None:
    from traingate.integrations.lightning import TraingateCallback

    with pytest.raises(ValueError, match="max_overflow_skips"):
        TraingateCallback(max_overflow_skips=-1)
