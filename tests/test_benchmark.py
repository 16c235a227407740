"""The benchmark runs (quick mode) and writes valid JSON with every method."""

import json

from unet.apps.benchmark import main
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
