"""The speed levers (unet-benchmark mode=levers): each one measured against its baseline, after the speed table."""

import json

from unet.benchmarks import BenchmarkSettings, format_levers, run_levers
from unet.models import UPSAMPLERS, UNet


def test_quick_levers_measure_each_lever_on_the_bilinear_model_after_the_speed_table():
    settings = BenchmarkSettings(quick=True, methods=("nearest", "bilinear"))
    nets = {method: (lambda m=method, **sizes: UNet(upsample=m, **sizes)) for method in sorted(UPSAMPLERS)}
    report = run_levers(settings, nets, peers={}, train_transforms=[])
    assert report == json.loads(json.dumps(report))  # JSON as it is
    assert [row["model"] for row in report["results"]] == ["nearest", "bilinear"]
    assert report["levers_model"] == "bilinear"  # the default method, not the first
    levers = {row["lever"]: row for row in report["levers"]}
    assert {"channels_last memory format", "bf16 autocast", "conv-BatchNorm folding"} <= set(levers)
    assert "decoded-image caching (PNG folder)" in levers
    assert [row["kind"] for row in levers.values()].count("data") >= 3  # workers twice, caching
    for row in levers.values():
        assert row["value"] > 0 and row["baseline"] > 0 and row["speedup"] > 0
    text = format_levers(report)
    assert "fp32 matmul peak" in text and "speed levers (bilinear" in text
