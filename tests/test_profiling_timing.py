"""Drift-corrected timing: a step's share of the matmul rate measured around it."""

import pytest

from unet.profiling import StepSample, efficiency


def test_efficiency_cancels_the_machine_slowing_down_between_samples():
    # The same step on a machine that ran at half speed (matmul probes at half rate) takes twice as long.
    fast = [StepSample(seconds=1.0, matmul_gflops=100.0), StepSample(seconds=1.1, matmul_gflops=95.0)]
    slow = [StepSample(seconds=2.0, matmul_gflops=50.0), StepSample(seconds=2.2, matmul_gflops=47.5)]
    step_flops = 50e9
    assert efficiency(slow, step_flops) == pytest.approx(efficiency(fast, step_flops))
    # 50 GFLOP in 1 s at 100 GFLOP/s is 0.5; the median of two samples is their mean.
    assert efficiency(fast, step_flops) == pytest.approx((0.5 + 50 / 1.1 / 95) / 2)
    # A step that is really twice as slow shows half the efficiency whatever the machine did.
    assert efficiency([StepSample(4.0, 50.0)]) / efficiency([StepSample(1.0, 100.0)]) == pytest.approx(0.5)
