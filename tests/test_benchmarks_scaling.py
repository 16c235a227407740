"""How cost grows with the image (unet-benchmark mode=scaling): each size with and without encoder checkpointing."""

import torch

import unet.benchmarks.scaling as scaling
from unet.benchmarks import BenchmarkSettings, format_scaling, run_scaling
from unet.models import UNet


def test_scaling_measures_each_size_with_and_without_encoder_checkpointing():
    settings = BenchmarkSettings(quick=True, methods=("bilinear",))
    report = run_scaling(settings, {"bilinear": lambda **kw: UNet(upsample="bilinear", **kw)})
    rows = report["scaling"]
    assert [(row["size"], row["checkpoint_encoder"]) for row in rows] == [
        (32, False), (64, False), (32, True), (64, True)
    ]  # fmt: skip
    for row in rows:
        assert not row["out_of_memory"] and row["train_s"] > 0 and row["infer_s"] > 0
        assert row["train_peak_memory_mb"] >= 0 and row["infer_peak_memory_mb"] >= 0
    assert "results" not in report  # the speed table is mode=speed's
    text = format_scaling(report)
    assert "scaling (bilinear, batch 1" in text and "checkpoint_encoder" in text
    assert f"CPU {report['machine']['cpu']}" in text


def test_scaling_reports_a_size_that_runs_out_of_memory_and_skips_larger_ones(monkeypatch):
    def out_of_memory_past_48(model, spec, *args):
        if spec.height > 48:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return {"train_s": 1.0, "train_peak_memory_mb": 1.0, "infer_s": 1.0, "infer_peak_memory_mb": 1.0}

    monkeypatch.setattr(scaling, "_row", out_of_memory_past_48)
    rows = scaling.measure_scaling(
        lambda checkpoint_encoder: UNet(depth=2, base_channels=4), sizes=[32, 64, 128]
    )
    assert [(r["size"], r["checkpoint_encoder"], r["out_of_memory"]) for r in rows] == [
        (32, False, False), (64, False, True), (32, True, False), (64, True, True)
    ]  # fmt: skip
