"""The benchmark runs (quick mode) and writes valid JSON with every method."""

import json

import pytest

from unet.apps.benchmark import StepSample, efficiency, main
from unet.models import UPSAMPLERS


def test_quick_benchmark_writes_json_for_every_method(tmp_path, capsys):
    path = tmp_path / "bench.json"
    report = main(["--quick", "--levers", "--json", str(path)])
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(report))
    assert sorted(row["model"] for row in written["results"]) == sorted(UPSAMPLERS)
    for row in written["results"]:
        assert row["train_images_per_s"] > 0 and row["train_gflops_per_s"] > 0
        assert row["train_gflops_per_image"] > 2 * row["forward_gflops_per_image"]
        assert 0 < row["fraction_of_matmul_peak"] and row["memory_format"] in ("contiguous", "channels_last")
        assert row["latency_ms"] > 0 and row["peak_memory_mb"] >= 0
    assert written["matmul_peak_gflops"] > 0 and written["data_images_per_s"] > 0
    levers = {row["lever"]: row for row in written["levers"]}
    assert {"channels_last memory format", "bf16 autocast", "conv-BatchNorm folding"} <= set(levers)
    assert "decoded-image caching (PNG folder)" in levers
    assert [row["kind"] for row in levers.values()].count("data") >= 3  # workers twice, caching
    for row in levers.values():
        assert row["value"] > 0 and row["baseline"] > 0 and row["speedup"] > 0
    out = capsys.readouterr().out
    assert "fp32 matmul peak" in out and "speed levers (bilinear" in out


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
