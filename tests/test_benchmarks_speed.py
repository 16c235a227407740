"""The speed benchmark (unet-benchmark mode=speed): every method in quick mode, encoders, refusals, the command."""

import importlib.util
import json

import pytest
from conftest import run_in_process

from unet.benchmarks import BenchmarkSettings, format_speed, run_speed
from unet.models import UPSAMPLERS, UNet

# The peer networks configs/benchmark.yaml measures, and the package each needs.
PEERS = {"monai_basicunet": "monai", "smp_unet_resnet18": "segmentation_models_pytorch"}


def test_quick_speed_benchmark_measures_every_method():
    settings = BenchmarkSettings(quick=True)
    nets = {method: (lambda m=method, **sizes: UNet(upsample=m, **sizes)) for method in sorted(UPSAMPLERS)}
    report = run_speed(settings, nets, peers={}, train_transforms=[])
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
    text = format_speed(report)
    assert "fp32 matmul peak" in text and "speed levers" not in text
    # Every figure names the machine it comes from: the processor's model and vector extensions.
    assert report["machine"]["cpu"] and f"CPU {report['machine']['cpu']}" in text


def test_encoders_are_measured_with_every_method_in_one_run():
    settings = BenchmarkSettings(quick=True, methods=("bilinear", "nearest"), encoders=("unet", "resnet18"))
    report = run_speed(settings, {m: (lambda m=m, **kw: UNet(upsample=m, **kw)) for m in UPSAMPLERS}, {}, [])
    rows = {row["model"]: row for row in report["results"]}
    assert list(rows) == ["unet/bilinear", "unet/nearest", "resnet18/bilinear", "resnet18/nearest"]
    # The backbone is what is measured: its parameters are the U-Net's with that encoder.
    assert rows["resnet18/bilinear"]["params"] == sum(
        p.numel()
        for p in UNet(1, 2, upsample="bilinear", encoder="resnet18", depth=2, base_channels=8).parameters()
    )
    assert rows["resnet18/bilinear"]["params"] > 10 * rows["unet/bilinear"]["params"]
    assert all(row["train_images_per_s"] > 0 for row in rows.values())


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown upsampling method"):
        run_speed(BenchmarkSettings(quick=True, methods=("bilinearr",)), {"bilinear": UNet}, {}, [])


def test_unet_benchmark_command_writes_the_report_into_the_run_directory(tmp_path, monkeypatch, capsys):
    """unet-benchmark's end-to-end run: every method, the peers and the levers, in this process (the
    installed script runs in a process of its own in test_benchmarks_modes.py).

    Slow (under a loaded -n auto run): every method and both peers are timed, then each speed lever; the
    peers' packages (MONAI, smp) are imported on first use.
    """
    run_dir = tmp_path / "run"
    arguments = ["quick=true", "mode=levers", "peers=true", f"hydra.run.dir={run_dir}"]
    result = run_in_process(
        "unet-benchmark", *arguments, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 0, result.stderr
    written = json.loads((run_dir / "benchmark.json").read_text())
    # The peers of configs/model/net/ whose packages are installed (skipped with a warning otherwise).
    peers = [name for name, package in PEERS.items() if importlib.util.find_spec(package)]
    assert [row["model"] for row in written["results"]] == sorted(UPSAMPLERS) + peers
    for peer in peers:
        assert all(row[f"gflops_ratio_vs_{peer}"] > 0 for row in written["results"])
    assert "levers" in written
    assert "fp32 matmul peak" in result.stdout and "speed levers (bilinear" in result.stdout
