"""The benchmark: the library in quick mode (every method, the levers), the command, drift correction."""

import importlib.util
import json

import pytest
import torch
from conftest import run_cli

from unet.models import UPSAMPLERS, UNet
from unet.profiling import BenchmarkSettings, StepSample, efficiency, format_report, run_benchmark

# The peer networks configs/benchmark.yaml measures, and the package each needs.
PEERS = {"monai_basicunet": "monai", "smp_unet_resnet18": "segmentation_models_pytorch"}


def test_quick_benchmark_measures_every_method_and_each_lever():
    settings = BenchmarkSettings(quick=True, levers=True)
    nets = {method: (lambda m=method, **sizes: UNet(upsample=m, **sizes)) for method in sorted(UPSAMPLERS)}
    report = run_benchmark(settings, nets, peers={}, train_transforms=[])
    assert report == json.loads(json.dumps(report))  # JSON as it is
    assert report["settings"]["size"] == 32 and report["settings"]["net_options"] == {
        "depth": 2,
        "base_channels": 8,
    }
    assert sorted(row["model"] for row in report["results"]) == sorted(UPSAMPLERS)
    for row in report["results"]:
        assert row["train_images_per_s"] > 0 and row["train_gflops_per_s"] > 0
        assert row["train_gflops_per_image"] > 2 * row["forward_gflops_per_image"]
        assert 0 < row["fraction_of_matmul_peak"] and row["memory_format"] in ("contiguous", "channels_last")
        assert row["latency_ms"] > 0 and row["peak_memory_mb"] >= 0
    assert report["matmul_peak_gflops"] > 0 and report["data_images_per_s"] > 0
    levers = {row["lever"]: row for row in report["levers"]}
    assert {"channels_last memory format", "bf16 autocast", "conv-BatchNorm folding"} <= set(levers)
    assert "decoded-image caching (PNG folder)" in levers
    assert [row["kind"] for row in levers.values()].count("data") >= 3  # workers twice, caching
    for row in levers.values():
        assert row["value"] > 0 and row["baseline"] > 0 and row["speedup"] > 0
    text = format_report(report)
    assert "fp32 matmul peak" in text and "speed levers (bilinear" in text
    # Every figure names the machine it comes from: the processor's model and vector extensions.
    assert report["machine"]["cpu"] and f"CPU {report['machine']['cpu']}" in text


def test_encoders_are_measured_with_every_method_in_one_run():
    settings = BenchmarkSettings(quick=True, methods=("bilinear", "nearest"), encoders=("unet", "resnet18"))
    report = run_benchmark(
        settings, {m: (lambda m=m, **kw: UNet(upsample=m, **kw)) for m in UPSAMPLERS}, {}, []
    )
    rows = {row["model"]: row for row in report["results"]}
    assert list(rows) == ["unet/bilinear", "unet/nearest", "resnet18/bilinear", "resnet18/nearest"]
    # The backbone is what is measured: its parameters are the U-Net's with that encoder.
    assert rows["resnet18/bilinear"]["params"] == sum(
        p.numel()
        for p in UNet(1, 2, upsample="bilinear", encoder="resnet18", depth=2, base_channels=8).parameters()
    )
    assert rows["resnet18/bilinear"]["params"] > 10 * rows["unet/bilinear"]["params"]
    assert all(row["train_images_per_s"] > 0 for row in rows.values())


def test_scaling_measures_each_size_with_and_without_encoder_checkpointing():
    settings = BenchmarkSettings(quick=True, methods=("bilinear",), scaling=True)
    report = run_benchmark(settings, {"bilinear": lambda **kw: UNet(upsample="bilinear", **kw)}, {}, [])
    rows = report["scaling"]
    assert [(row["size"], row["checkpoint_encoder"]) for row in rows] == [
        (32, False), (64, False), (32, True), (64, True)
    ]  # fmt: skip
    for row in rows:
        assert not row["out_of_memory"] and row["train_s"] > 0 and row["infer_s"] > 0
        assert row["train_peak_memory_mb"] >= 0 and row["infer_peak_memory_mb"] >= 0
    text = format_report(report)
    assert "scaling (bilinear, batch 1" in text and "checkpoint_encoder" in text


def test_scaling_reports_a_size_that_runs_out_of_memory_and_skips_larger_ones(monkeypatch):
    import unet.profiling.scaling as scaling

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


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown upsampling method"):
        run_benchmark(BenchmarkSettings(quick=True, methods=("bilinearr",)), {"bilinear": UNet}, {}, [])


def test_unet_benchmark_command_writes_the_report_into_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    arguments = ["quick=true", "levers=true", "peers=true", f"hydra.run.dir={run_dir}"]
    result = run_cli("unet-benchmark", *arguments, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads((run_dir / "benchmark.json").read_text())
    # The peers of configs/model/net/ whose packages are installed (skipped with a warning otherwise).
    peers = [name for name, package in PEERS.items() if importlib.util.find_spec(package)]
    assert [row["model"] for row in written["results"]] == sorted(UPSAMPLERS) + peers
    for peer in peers:
        assert all(row[f"gflops_ratio_vs_{peer}"] > 0 for row in written["results"])
    assert "levers" in written
    assert "fp32 matmul peak" in result.stdout and "speed levers (bilinear" in result.stdout


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


def test_tiled_inference_equals_monais_sliding_window_and_reports_speed_and_memory():
    """unet-benchmark predict=true's measurement on a small scan: every runner of ours gives MONAI's
    probabilities (within 1e-4) and class map, with megapixels/s and peak memory for each."""
    from unet.inference.benchmark import TiledSettings, format_tiled, measure_tiled_inference

    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, base_channels=4, depth=2)
    net.train()
    with torch.no_grad():  # BatchNorm statistics of its own, so folding them changes the weights
        net(torch.randn(4, 1, 64, 64) * 2 + 1)
    settings = TiledSettings(size=200, tile_size=64, batch_size=3, rounds=2)
    report = measure_tiled_inference(net, settings)
    rows = {row["runner"]: row for row in report["rows"]}
    assert list(rows) == [
        "MONAI sliding_window_inference", "pytorch, as loaded", "pytorch, inference form", "onnxruntime"
    ]  # fmt: skip
    assert report["megapixels"] == pytest.approx(0.04)
    for name, row in rows.items():
        assert row["megapixels_per_s"] > 0 and row["peak_mb"] >= 0 and row["vs_monai"] > 0, name
        if name != "MONAI sliding_window_inference":
            assert row["equal_within_tolerance"] and row["max_probability_difference"] < 1e-4, name
            assert row["mask_agreement"] > 0.999, name
    assert "tiles 64, overlap 0.25" in format_tiled(report, settings)
