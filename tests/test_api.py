"""The Python API: keywords compose the command's own config, training equals the command's, a loaded model
predicts arrays, images and files alike and exports, a comparison reports, and mistakes are the
commands' one-line errors raised as typed exceptions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_RUN, train_in_process
from omegaconf import OmegaConf
from PIL import Image
from test_refusals import last_line, run_app

import unet
import unet.compare.runs
from unet.api import command_config
from unet.api.model import export_format
from unet.data.errors import ImageReadError
from unet.utils.config import compose_config
from unet.utils.errors import ConfigError, InputFileError, UserError

# conftest.TINY_RUN as keywords, in its order.
TINY = {
    "num_train": 64,
    "num_val": 16,
    "num_test": 16,
    "image_size": 32,
    "batch_size": 16,
    "base_channels": 8,
    "depth": 2,
    "max_epochs": 2,
    "accelerator": "cpu",
    "progress_bar": None,
    "lr": 1e-3,
    "precision": "32-true",
    "check_val_every_n_epoch": 1,
    "memory_format": "contiguous",
    "norm": "batch",
    "class_weights": None,
}


def task(cfg):
    """A composed config without its hydra node, unresolved, as plain data."""
    return {key: value for key, value in OmegaConf.to_container(cfg, resolve=False).items() if key != "hydra"}


def test_import_unet_loads_neither_torch_nor_lightning():
    probe = "import sys, unet; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_no_name_of_the_api_is_taken_by_a_package_of_unet():
    """``import unet.<package>`` sets that attribute of ``unet``: an API function of that name would be lost."""
    packages = {path.parent.name for path in Path(unet.__file__).parent.glob("*/__init__.py")}
    assert not packages & set(unet.API)


def test_keywords_compose_the_config_the_command_line_composes():
    keywords = {"data": "folder", "root": "cells/", "num_classes": 2, "upsample": "maxunpool"}
    keywords |= {"max_time": "00:00:10:00", "loss": "dice", "model.optimizer.lr": 3e-4}
    cfg, overrides = command_config("train", keywords)
    typed = [
        "data=folder", "model/loss=dice", "data.root=cells/", "data.num_classes=2", "model.upsample=maxunpool",
        "trainer.max_time=00:00:10:00", "model.optimizer.lr=0.0003",
    ]  # fmt: skip
    assert overrides == typed
    assert task(cfg) == task(compose_config("train", typed))


def test_the_tiny_keywords_compose_the_tiny_run():
    cfg, overrides = command_config("train", TINY)
    assert [override.split("=")[0] for override in overrides] == [o.split("=")[0] for o in TINY_RUN]
    assert task(cfg) == task(compose_config("train", TINY_RUN))


def test_a_full_key_is_taken_before_a_key_that_ends_in_it():
    assert command_config("benchmark", {"batch_size": 4})[1] == ["batch_size=4"]  # not tiled.batch_size
    assert command_config("train", {"output_dir": "run"})[1] == ["paths.output_dir=run"]


def test_hydra_groups_go_by_their_full_name_and_values_are_written_as_overrides():
    keywords = {"hydra/launcher": "basic", "data": "folder", "methods": ["a", "b"], "root": Path("cells, 2")}
    assert command_config("compare", keywords)[1] == [
        "hydra/launcher=basic", "data=folder", "methods=[a,b]", "data.root='cells, 2'",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"launcher=\.\.\.: .*did you mean hydra/launcher\?"):
        command_config("compare", {"launcher": "basic"})


def test_a_short_name_of_several_keys_is_refused_naming_each():
    with pytest.raises(ConfigError) as refused:
        command_config("compare", {"batch_size": 4})
    message = str(refused.value)
    assert "ambiguous" in message and "data.batch_size" in message and "costs.batch_size" in message


def test_an_unknown_keyword_is_one_line_naming_the_closest_keys():
    with pytest.raises(ConfigError) as refused:
        unet.train(max_epoch=3)
    assert str(refused.value) == (
        "max_epoch=...: no config group or key of the train config is named so "
        "(did you mean trainer.max_epochs, trainer.min_epochs?)"
    )


@pytest.mark.parametrize(
    ("keywords", "arguments"),
    [
        ({"overrides": ["trainer.max_epoch=1"]}, ["trainer.max_epoch=1"]),
        ({"data": "nope"}, ["data=nope"]),
        ({"data": "folder", "num_classes": 2}, ["data=folder", "data.num_classes=2"]),
        pytest.param(
            {"accelerator": "gpu"},
            ["trainer.accelerator=gpu"],
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device"),
        ),
    ],
    ids=["unknown-key", "unknown-group-option", "missing-value", "device-this-machine-lacks"],
)
def test_a_config_mistake_raises_the_line_the_command_prints(
    keywords, arguments, tmp_path, monkeypatch, capsys
):
    # ConfigError, or the error the device check raises
    with pytest.raises((UserError, ValueError)) as raised:
        unet.train(**keywords, output_dir=tmp_path / "api")
    if arguments[0] != "trainer.accelerator=gpu":
        assert isinstance(raised.value, ConfigError)
    cli = [*arguments, f"hydra.run.dir={tmp_path / 'cli'}"]
    code, err, _ = run_app("train", *cli, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert last_line(err) == f"error: {raised.value}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> unet.Run:
    """The tiny run, trained through the API."""
    return unet.train(**TINY, output_dir=tmp_path_factory.mktemp("api") / "run")


@pytest.fixture(scope="module")
def model(trained) -> unet.Model:
    return unet.load(trained.best)


def test_a_run_holds_its_checkpoints_metrics_and_config(trained):
    assert trained.best.name == "best.ckpt" and trained.last.name == "last.ckpt"
    assert trained.metrics == json.loads((trained.directory / "metrics.json").read_text())
    assert trained.config["model"]["net"]["depth"] == 2
    assert trained.command == "unet-train " + " ".join(trained.overrides)
    assert trained.overrides[-1] == f"paths.output_dir={trained.directory}"


def test_training_through_the_api_equals_the_command_on_the_same_config(trained, tmp_path):
    from unet.apps.train import main

    main(compose_config("train", [*TINY_RUN, f"paths.output_dir={tmp_path}"]))
    assert json.loads((tmp_path / "metrics.json").read_text()) == trained.metrics


def test_predict_takes_arrays_images_and_files_alike(model, tmp_path):
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    mask, probabilities = model.predict(image, probabilities=True)
    assert mask.shape == (40, 50) and mask.dtype == np.uint8
    assert probabilities.shape == (model.num_classes, 40, 50)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(probabilities.argmax(axis=0), mask)
    Image.fromarray(image).save(tmp_path / "image.png")
    for same in (image[..., None], image / 255.0, Image.fromarray(image), tmp_path / "image.png"):
        assert np.array_equal(model.predict(same), mask)
    tiled = model.predict(image, tile_size=32)  # 2 x 2 overlapping tiles, blended
    assert tiled.shape == mask.shape and (tiled == mask).mean() > 0.9
    with pytest.raises(ImageReadError, match=r"shape \(3, 40, 50\); expected \(H, W\)"):
        model.predict(np.stack([image] * 3))


def test_predict_files_writes_the_masks_predict_returns(model, tmp_path):
    image = (np.random.default_rng(1).random((48, 36)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "cells.png")
    summary = model.predict_files(tmp_path / "cells.png", tmp_path / "out", tile_size=32)
    assert summary["images"] == 1
    written = np.asarray(Image.open(tmp_path / "out" / "cells_mask.png"))
    assert np.array_equal(written, model.predict(image, tile_size=32))
    with pytest.raises(ConfigError, match="device: chosen when the model was loaded"):
        model.predict_files(tmp_path / "cells.png", tmp_path / "again", device="cuda")


def test_export_to_onnx_predicts_as_the_checkpoint(model, tmp_path):
    """Slow: torch's ONNX exporter traces the network, and the export is checked in onnxruntime."""
    path = model.export(tmp_path / "model.onnx", **{"measure.speed": False})  # timed: test_export_runtimes
    assert path == tmp_path / "model.onnx" and (tmp_path / "model.onnx.json").is_file()
    exported = unet.load(path)
    assert exported.format == "onnx" and exported.classes == model.classes
    image = (np.random.default_rng(2).random((40, 50)) * 255).astype(np.uint8)
    assert (exported.predict(image) == model.predict(image)).mean() > 0.99
    with pytest.raises(InputFileError, match="exporting needs the training checkpoint"):
        exported.export(tmp_path / "again.onnx")


def test_the_export_format_is_told_by_the_longest_suffix():
    assert [export_format(name) for name in ("m.onnx", "m.pt2", "m.pt", "m.weights.pt")] == [
        "onnx", "pt2", "torchscript", "weights",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="cannot tell the export format of m.bin"):
        export_format("m.bin")


def test_evaluate_scores_a_run_as_training_did(trained, tmp_path):
    result = unet.evaluate(trained, split="val", output_dir=tmp_path)
    assert result["metrics"]["val/miou"] == pytest.approx(trained.metrics["val/miou"])
    assert (tmp_path / "eval.json").is_file()


def test_compare_reports_every_method(tmp_path, monkeypatch):
    """Two trainings in one sweep (run in this process, as test_apps_compare runs them)."""
    monkeypatch.setattr(unet.compare.runs, "subprocess", SimpleNamespace(run=train_in_process))
    run_keywords = {key: value for key, value in TINY.items() if key not in ("batch_size", "max_epochs")}
    comparison = unet.compare_methods(
        methods=["bilinear", "maxunpool"],
        seeds=[0],
        output=tmp_path / "cmp",
        costs={"height": 32, "width": 32, "batch_size": 2},
        **{"data.batch_size": 16, "trainer.max_epochs": 1},
        **run_keywords,
    )
    assert sorted(row["method"] for row in comparison.methods) == ["bilinear", "maxunpool"]
    assert comparison.report["command"] == comparison.command
    assert comparison.files["markdown"] == tmp_path / "cmp" / "comparison.md"
    assert {run["status"] for run in comparison.report["runs"]} == {"ok"}
