"""Exports that deploy: torch.export (pt2) files, uint8 preprocessing inside the graph, int8 ONNX copies."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_in_process
from PIL import Image
from test_export_predict import save_checkpoint

from unet.data.transforms import normalize_image
from unet.export import export_checkpoint
from unet.inference import load_predictor, predict_files
from unet.inference.files import collect_inputs
from unet.models.loading import read_sidecar
from unet.training.checkpoint import RUN_CONFIG_KEY
from unet.training.module import SegmentationModule
from unet.utils.normalization import channel_tensor

pytest.importorskip("onnxruntime", reason="ONNX exports are checked and run with onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "checkpoints" / "best.ckpt", "maxunpool")


@pytest.fixture(scope="module")
def exports(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The plain ONNX export (with its dynamic int8 copy) and uint8 mask exports of both formats, in
    either layout."""
    root = tmp_path_factory.mktemp("exports")
    quantize = "dynamic" if importlib.util.find_spec("onnxruntime.quantization") else None
    return {
        "plain": export_checkpoint(checkpoint, "onnx", root / "plain.onnx", quantize=quantize)[0],
        "onnx": export_checkpoint(checkpoint, "onnx", root / "mask.onnx", embed=True, outputs="mask")[0],
        "pt2": export_checkpoint(
            checkpoint, "pt2", root / "mask.pt2", embed=True, input_layout="bchw", outputs="mask"
        )[0],
    }


def reference_masks(checkpoint: Path, pixels: np.ndarray) -> np.ndarray:
    """Class indices ``(B, H, W)`` of the checkpoint for uint8 images ``(B, H, W, C)``, normalised as the data
    pipeline does."""
    predictor = load_predictor(checkpoint)
    mean, std = channel_tensor(predictor.metadata["mean"]), channel_tensor(predictor.metadata["std"])
    images = np.stack([normalize_image(image, mean, std).numpy() for image in pixels])
    return predictor(images).argmax(axis=1)


def test_pt2_loads_with_torch_export_and_matches_pytorch_at_two_sizes(checkpoint, tmp_path):
    path, sidecar = export_checkpoint(checkpoint, "pt2")
    assert path == checkpoint.with_suffix(".pt2") and sidecar == path.with_name("best.pt2.json")
    metadata = read_sidecar(path)
    assert metadata["format"] == "pt2" and metadata["check_max_abs_diff"] <= 1e-4
    assert metadata["input"] == {**metadata["input"], "dtype": "float32", "layout": "bchw"}
    program = torch.export.load(str(path)).module()
    net = load_predictor(checkpoint)
    for shape in [(1, 1, 37, 29), (3, 1, 64, 48)]:  # neither is the export's size
        images = torch.randn(shape)
        with torch.no_grad():
            exported = program(images).numpy()
        np.testing.assert_allclose(exported, net(images.numpy()), atol=1e-4)
    with pytest.raises(FileExistsError, match="best.pt2"):
        export_checkpoint(checkpoint, "pt2")


def test_a_model_trained_channels_last_exports_to_pt2_that_takes_one_image(tmp_path):
    # Channels-last weights once made torch.export guard on batch > 1: unet-predict's single images failed.
    checkpoint = save_checkpoint(tmp_path / "best.ckpt", "bilinear", memory_format="channels_last")
    path, _ = export_checkpoint(checkpoint, "pt2")
    program = torch.export.load(str(path)).module()
    images = torch.randn(1, 1, 37, 29)
    with torch.no_grad():
        np.testing.assert_allclose(
            program(images).numpy(), load_predictor(checkpoint)(images.numpy()), atol=1e-4
        )


def test_uint8_exports_give_the_checkpoints_masks(checkpoint, exports):
    import onnxruntime

    pixels = np.random.default_rng(0).integers(0, 256, (2, 37, 45, 1), dtype=np.uint8)
    expected = reference_masks(checkpoint, pixels)
    session = onnxruntime.InferenceSession(str(exports["onnx"]), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(["mask"], {"images": pixels})[0], expected)  # (B, H, W, C)
    program = torch.export.load(str(exports["pt2"])).module()
    with torch.no_grad():
        masks = program(torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy())).numpy()  # (B, C, H, W)
    np.testing.assert_array_equal(masks, expected)
    metadata = read_sidecar(exports["onnx"])
    assert metadata["embed_preprocessing"] is True and metadata["check_pixels_differing"] == 0
    assert metadata["input"]["dtype"] == "uint8" and metadata["input"]["layout"] == "bhwc"
    assert metadata["input"]["shape"] == ["batch", "height", "width", 1]
    assert metadata["output"]["kind"] == "mask" and metadata["output"]["dtype"] == "int64"
    assert read_sidecar(exports["pt2"])["input"]["layout"] == "bchw"


def test_uint8_logits_export_matches_the_plain_one(checkpoint, tmp_path):
    path, _ = export_checkpoint(checkpoint, "onnx", tmp_path / "logits.onnx", embed=True)
    pixels = np.random.default_rng(1).integers(0, 256, (1, 40, 33, 1), dtype=np.uint8)
    predictor = load_predictor(path)
    logits = predictor(predictor.prepare(pixels[0])[None].astype(np.float32))
    reference = load_predictor(checkpoint)
    np.testing.assert_allclose(logits, reference(reference.prepare(pixels[0])[None]), atol=1e-4)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (50, 61), dtype=np.uint8)).save(folder / "slice.png")
    Image.fromarray(rng.integers(0, 256, (3, 5), dtype=np.uint8)).save(folder / "tiny.png")  # padded
    return folder


def written_masks(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: np.asarray(Image.open(path)) for path in sorted(folder.glob("*_mask.png"))}


def test_predicting_with_uint8_mask_exports_writes_the_plain_exports_masks(exports, image_folder, tmp_path):
    inputs = collect_inputs(str(image_folder))
    for name in ("plain", "onnx", "pt2"):
        predict_files(load_predictor(exports[name]), inputs, tmp_path / name, tile_size=64)
    plain = written_masks(tmp_path / "plain")
    assert sorted(plain) == ["slice_mask.png", "tiny_mask.png"]
    for name in ("onnx", "pt2"):
        masks = written_masks(tmp_path / name)
        assert masks.keys() == plain.keys()
        for file, mask in masks.items():
            np.testing.assert_array_equal(mask, plain[file], err_msg=f"{name}: {file}")
    with pytest.raises(ValueError, match="save_probabilities=true: .*class indices"):
        predict_files(load_predictor(exports["onnx"]), inputs, tmp_path / "p", save_probabilities=True)


def synthetic_checkpoint(path: Path, with_data: bool = True, base_channels: int = 4) -> Path:
    """A one-level U-Net checkpoint (fast to export) that records its training data (4-class synthetic
    shapes: 3 training, 4 validation images) as unet-train writes it, or with ``with_data=False`` does not."""
    torch.manual_seed(0)
    module = SegmentationModule(
        in_channels=1,
        num_classes=4,
        class_names=["background", "circle", "square", "triangle"],
        mean=[0.5],
        std=[0.25],
        upsample="bilinear",
        net={"_target_": "unet.models.UNet", "depth": 1, "base_channels": base_channels},
    ).eval()
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    if with_data:
        data = {"_target_": "unet.data.SyntheticDataModule", "num_train": 3, "num_val": 4, "num_test": 0}
        checkpoint[RUN_CONFIG_KEY] = {"data": {**data, "image_size": 32, "batch_size": 2, "num_workers": 0}}
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path


def test_dynamic_quantisation_writes_a_smaller_loadable_copy_with_its_accuracy_change(tmp_path):
    pytest.importorskip("onnxruntime.quantization", reason="quantize=dynamic needs onnxruntime.quantization")
    checkpoint = synthetic_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    path, sidecar = export_checkpoint(checkpoint, "onnx", quantize="dynamic")
    quantized = path.with_name("best.int8.onnx")
    assert quantized.is_file() and quantized.stat().st_size < path.stat().st_size
    report = read_sidecar(quantized)["quantization"]
    assert report["method"] == "dynamic" and report["file"] == "best.int8.onnx"
    assert report["bytes"] == {"float32": path.stat().st_size, "int8": quantized.stat().st_size}
    quality = read_sidecar(quantized)["quality"]
    assert quality["split"] == "val" and quality["images"] == 4
    assert quality["miou_change"] == pytest.approx(quality["miou"] - quality["miou_checkpoint"])
    assert 0 <= report["max_abs_logit_diff"] < 1.0
    assert json.loads(sidecar.read_text())["quantized_copy"] == report
    images = np.random.default_rng(0).standard_normal((1, 1, 32, 40)).astype(np.float32)
    assert load_predictor(quantized)(images).shape == (1, 4, 32, 40)


def test_quantisation_says_why_without_the_validation_data(exports):
    pytest.importorskip("onnxruntime.quantization", reason="quantize=dynamic needs onnxruntime.quantization")
    quality = read_sidecar(exports["plain"].with_name("plain.int8.onnx"))["quality"]
    assert "does not record its training data" in quality["skipped"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"embed": True, "export_format": "torchscript"}, "embed_preprocessing=true: format=torchscript"),
        ({"outputs": "mask"}, "outputs=mask needs embed_preprocessing=true"),
        ({"embed": True, "input_layout": "hwc"}, "input_layout=hwc: expected one of bhwc, bchw"),
        ({"quantize": "int4"}, "quantize=int4: expected null or one of dynamic, static"),
        ({"quantize": "dynamic", "export_format": "pt2"}, "quantize=dynamic: only format=onnx"),
    ],
)
def test_options_a_format_cannot_honour_are_refused_before_writing(checkpoint, tmp_path, options, message):
    options = {"export_format": "onnx", **options}
    with pytest.raises(ValueError, match=message):
        export_checkpoint(checkpoint, output=tmp_path / "m", **options)
    assert not list(tmp_path.iterdir())


def test_export_cli_refusal_is_one_line_with_exit_code_2(checkpoint, tmp_path, monkeypatch, capsys):
    """The command's entry point in this process (the installed command runs in test_export_runtimes.py)."""
    result = run_in_process(
        "unet-export", f"ckpt_path={checkpoint}", f"output={tmp_path / 'm.pt'}", "format=torchscript",
        "embed_preprocessing=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2 and "embed_preprocessing=true: format=torchscript" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.pt").exists()
