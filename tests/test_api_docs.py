"""docs/python-api.md runs as written: its Python examples, executed in order in an empty folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from conftest import train_in_process
from omegaconf import OmegaConf

import unet.api.deploy
import unet.compare.runs

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def python_blocks(markdown: str) -> list[str]:
    """The ```python fenced blocks of a page, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)


def test_the_page_has_an_example_of_every_function():
    code = "\n".join(python_blocks(PAGE.read_text()))
    for call in ["unet.train(", "unet.compare_methods(", "unet.evaluate(", "unet.plan(", "unet.check_data("]:
        assert call in code, call
    for call in ["unet.load(", ".predict(", ".predict_files(", ".export("]:
        assert call in code, call


def test_every_python_example_of_the_page_runs(tmp_path, monkeypatch, fixed_training_speed):
    """Slow: the page trains, evaluates, exports and compares (two trainings), on the tiny data its first
    example writes. The comparison's sweep runs in this process (test_cluster_configs runs one in a
    process of its own); the plan's speeds are fixed, not measured (test_planning measures them); the
    export measures its speed on a small image instead of measure.image_size's 1024 x 1024 (most of the
    export's time; test_export_runtimes checks the measurement)."""
    monkeypatch.setattr(unet.compare.runs, "subprocess", SimpleNamespace(run=train_in_process))
    measure = unet.api.deploy.speed_measure
    small_image = {"image_size": 64, "tile_size": 32, "batch_sizes": [1, 2]}
    monkeypatch.setattr(
        unet.api.deploy, "speed_measure", lambda cfg: measure(OmegaConf.merge(cfg, small_image))
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNET_LOG_DIR", raising=False)
    namespace: dict = {"__name__": "python_api_page"}
    for number, block in enumerate(python_blocks(PAGE.read_text()), start=1):
        exec(compile(block, f"{PAGE.name}, example {number}", "exec"), namespace)  # noqa: S102 - our own page
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.onnx.json").is_file()
    assert json.loads((tmp_path / "model.onnx.json").read_text())["speed"]["image"] == [64, 64]
    assert namespace["mask"].shape == (64, 64)
    assert [row["method"] for row in namespace["comparison"].methods] in (
        ["bilinear", "maxunpool"],
        ["maxunpool", "bilinear"],
    )
    assert namespace["run"].directory.parent == tmp_path / "logs" / "train" / "runs"
