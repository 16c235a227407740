"""examples/autoencoder.py: the U-Net's decoder stages reconstruct the synthetic shapes."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    spec = importlib.util.spec_from_file_location("autoencoder_example", ROOT / "examples" / "autoencoder.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_autoencoder_learns_to_reconstruct_and_reports_each_method(capsys):
    example = load_example()
    tiny = ["--size", "16", "--base-channels", "4", "--batch", "8"]
    untrained = example.main(["--methods", "nearest", "--steps", "0", *tiny])
    results = example.main(["--methods", "nearest", "maxunpool", "--steps", "40", *tiny])
    assert sorted(results) == ["maxunpool", "nearest"]
    assert all(math.isfinite(row["mse"]) for row in results.values())
    assert results["nearest"]["mse"] < untrained["nearest"]["mse"] / 2
    table = capsys.readouterr().out
    assert "| `maxunpool` |" in table and "bottleneck of 16 values, x4 per level" in table
