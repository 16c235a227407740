"""Export every method to ONNX, TorchScript and weights with parity checks; predict on new images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_in_process
from PIL import Image

from unet.export import ExportError, export_checkpoint
from unet.export.exporters import DEFAULT_SUFFIXES
from unet.inference import load_predictor, predict_files, predict_probabilities
from unet.inference.files import collect_inputs
from unet.inference.tiling import segment_tiled
from unet.models import UPSAMPLERS
from unet.models.loading import read_sidecar
from unet.profiling import peak_memory_bytes
from unet.training.checkpoint import module_from_checkpoint
from unet.training.module import SegmentationModule


def save_checkpoint(
    path: Path, upsample: str, in_channels: int = 1, depth: int = 1, scale: int = 2, **module_options
) -> Path:
    """A checkpoint as unet-train writes it (hyper-parameters + state dict) of a randomly initialised model;
    ``scale``: each level's pooling and upsampling factor.

    One level by default: it holds every part an export must carry (encoder, the upsampler, a skip, the
    head) at half the graph of two levels, and tracing the graph is most of an ONNX export's time.
    """
    torch.manual_seed(0)
    module = SegmentationModule(
        **module_options,
        in_channels=in_channels,
        num_classes=3,
        class_names=["background", "cell", "edge"],
        mean=[0.5] * in_channels,
        std=[0.25] * in_channels,
        upsample=upsample,
        net={"_target_": "unet.models.UNet", "depth": depth, "base_channels": 8, "scale": scale},
    )
    # Non-trivial batch-norm statistics, so eval mode differs from a fresh model.
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(4, in_channels, 32, 32))
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)  # the format and version keys unet-train writes
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        method: save_checkpoint(root / method / "checkpoints" / "best.ckpt", method) for method in UPSAMPLERS
    }


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> Callable[[str, str], tuple[Path, Path]]:
    """``exported(method, format)``: the file and sidecar of that checkpoint's export, written on first use
    and shared by the module's tests (an ONNX export takes seconds)."""
    root = tmp_path_factory.mktemp("exports")
    files: dict[tuple[str, str], tuple[Path, Path]] = {}

    def export(method: str, export_format: str) -> tuple[Path, Path]:
        if (method, export_format) not in files:
            output = root / method / f"model{DEFAULT_SUFFIXES[export_format]}"
            files[method, export_format] = export_checkpoint(checkpoints[method], export_format, output)
        return files[method, export_format]

    return export


@pytest.mark.parametrize("method", sorted(UPSAMPLERS))
@pytest.mark.parametrize("export_format", ["onnx", "torchscript", "weights"])
def test_every_method_exports_and_matches_pytorch(checkpoints, exported, method, export_format):
    path, sidecar = exported(method, export_format)
    assert path.is_file() and sidecar == path.with_name(path.name + ".json")
    metadata = read_sidecar(path)
    assert metadata["upsample"] == method and metadata["num_classes"] == 3 and metadata["in_channels"] == 1
    assert metadata["class_names"] == ["background", "cell", "edge"] and metadata["mean"] == [0.5]
    assert metadata["versions"]["torch"] == torch.__version__
    if export_format != "weights":
        assert metadata["check_max_abs_diff"] <= 1e-4
    # The exported model, loaded back, gives PyTorch's logits at yet another odd size.
    images = np.random.default_rng(3).standard_normal((1, 1, 37, 29)).astype(np.float32)
    reference = load_predictor(checkpoints[method])(images)
    exported = load_predictor(path)(images)
    np.testing.assert_allclose(exported, reference, atol=1e-4)


def test_x4_levels_predict_tiled_and_pad_small_images(tmp_path):
    predictor = load_predictor(save_checkpoint(tmp_path / "best.ckpt", "bilinear", scale=4))
    image = np.random.default_rng(1).standard_normal((1, 45, 61)).astype(np.float32)
    whole = predict_probabilities(predictor, image, 3, min_size=16, tile_size=64)
    tiled = predict_probabilities(predictor, image, 3, min_size=16, tile_size=32, overlap=0.5)
    assert tiled.shape == whole.shape == (3, 45, 61)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)
    assert (tiled.argmax(0) == whole.argmax(0)).mean() > 0.9
    assert predict_probabilities(predictor, np.zeros((1, 5, 7), np.float32), 3, min_size=16).shape == (
        3,
        5,
        7,
    )


def test_onnx_has_dynamic_batch_height_width_and_recent_opset(exported):
    import onnx

    path, _ = exported("maxunpool", "onnx")
    model = onnx.load(str(path))
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]


def test_weights_load_with_weights_only(exported):
    path, _ = exported("transposed", "weights")
    state = torch.load(path, weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())


def test_export_never_overwrites(checkpoints, tmp_path):
    target = tmp_path / "exists.onnx"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        export_checkpoint(checkpoints["nearest"], "onnx", target)
    assert target.read_text() == "mine"


def test_export_refuses_an_existing_sidecar_before_writing_anything(checkpoints, tmp_path):
    sidecar = tmp_path / "w.pt.json"
    sidecar.write_text("mine")
    with pytest.raises(FileExistsError, match=f"{sidecar} already exists.*nothing was written"):
        export_checkpoint(checkpoints["nearest"], "weights", tmp_path / "w.pt")
    assert sidecar.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["w.pt.json"]


def test_a_parity_failure_is_an_error_and_leaves_no_file(checkpoints, tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_checkpoint(checkpoints["bilinear"], "torchscript", tmp_path / "m.pt", tolerance=-1.0)
    assert not (tmp_path / "m.pt").exists() and not list(tmp_path.iterdir())  # no sidecar, no staging folder


def test_export_cli_writes_beside_the_checkpoint_and_sweeps_formats(
    checkpoints, tmp_path, monkeypatch, capsys
):
    """In this process; the installed command runs end to end in test_export_runtimes.py."""
    checkpoint = checkpoints["dysample"]
    result = run_in_process(
        "unet-export", "-m", f"ckpt_path={checkpoint}", "format=torchscript,weights",
        "measure.speed=false",  # timing the forms is tested in test_export_runtimes.py
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for suffix, export_format in [(".pt", "torchscript"), (".weights.pt", "weights")]:
        path = checkpoint.with_name(checkpoint.stem + suffix)
        assert f"wrote {path}" in result.stdout
        assert json.loads(Path(f"{path}.json").read_text())["format"] == export_format


def constant_predictor(num_classes: int = 3):
    """Logits that depend on position only through the input, to check tiling reassembles exactly."""

    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate([images * (k + 1) for k in range(num_classes)], axis=1)

    return predict


def test_tiled_prediction_covers_an_odd_image_and_blends_pointwise_models_exactly():
    image = np.random.default_rng(0).standard_normal((1, 301, 517)).astype(np.float32)
    whole = predict_probabilities(constant_predictor(), image, 3, min_size=4, tile_size=1024)
    tiled = predict_probabilities(constant_predictor(), image, 3, min_size=4, tile_size=128, overlap=0.3)
    assert tiled.shape == (3, 301, 517)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)


def test_tiled_equals_whole_image_prediction_where_the_image_fits_a_tile(checkpoints):
    predictor = load_predictor(checkpoints["bilinear"])
    image = np.random.default_rng(1).standard_normal((1, 45, 61)).astype(np.float32)
    whole = predict_probabilities(predictor, image, 3, min_size=4, tile_size=64)
    logits = predictor(image[None])[0]
    expected = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    tiled = predict_probabilities(predictor, image, 3, min_size=4, tile_size=32, overlap=0.5)
    assert (tiled.argmax(0) == whole.argmax(0)).mean() > 0.9


def test_small_images_are_padded_and_cropped_back(checkpoints):
    predictor = load_predictor(checkpoints["maxunpool"])
    probabilities = predict_probabilities(predictor, np.zeros((1, 3, 2), np.float32), 3, min_size=4)
    assert probabilities.shape == (3, 3, 2)


def test_flip_tta_of_a_flip_equivariant_model_changes_nothing():
    image = np.random.default_rng(2).standard_normal((1, 40, 50)).astype(np.float32)
    plain = predict_probabilities(constant_predictor(), image, 3, min_size=4, tile_size=32)
    tta = predict_probabilities(constant_predictor(), image, 3, min_size=4, tile_size=32, tta=True)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def test_streamed_masks_and_probabilities_equal_the_whole_images_and_tiles_are_normalised_as_cut():
    """segment_tiled streams rows of tiles; its class map and probabilities are those of the blended
    image, and normalising each tile as it is cut equals normalising the whole image first."""
    pixels = np.random.default_rng(3).integers(0, 256, (1, 301, 517), dtype=np.uint8)
    normalised = (pixels.astype(np.float32) - 100) / 50
    expected = predict_probabilities(
        constant_predictor(), normalised, 3, min_size=4, tile_size=64, overlap=0.4
    )
    probabilities = np.zeros((3, 301, 517), np.float16)
    mask = segment_tiled(
        constant_predictor(), pixels, 3, min_size=4, tile_size=64, overlap=0.4, batch_size=3,
        prepare=lambda tile: (tile.astype(np.float32) - 100) / 50, probabilities=probabilities,
    )  # fmt: skip
    assert mask.shape == (301, 517) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected.argmax(0))
    np.testing.assert_allclose(probabilities, expected, atol=1e-3)  # float16 storage


def test_tiled_memory_grows_with_the_image_by_its_class_map_alone():
    """Doubling a scan's side (1024 -> 2048) adds little more than the class map's byte per pixel to
    the peak: probabilities are held for one band of tiles. Blending the whole image added 14.6."""

    def pointwise(tiles: np.ndarray) -> np.ndarray:
        return np.concatenate([tiles, -tiles], axis=1)

    peaks = {}
    for side in (1024, 2048):
        image = np.full((1, side, side), 7, np.uint8)  # written: its pages are resident before measuring

        def segment(image=image) -> np.ndarray:
            return segment_tiled(
                pointwise, image, 2, 1, tile_size=128, batch_size=8, prepare=lambda t: t.astype(np.float32)
            )

        assert segment().shape == (side, side)
        # Resident memory (numpy's and torch's alike), sampled: the lower of two runs, less noise.
        peaks[side] = min(peak_memory_bytes(segment, "cpu") for _ in range(2))
    added = 2048**2 - 1024**2
    # Room for the band of tiles (a larger share of a smaller image) and the sampling's noise under load.
    assert peaks[2048] - peaks[1024] < 6 * added, (
        f"{(peaks[2048] - peaks[1024]) / added:.1f} bytes per added pixel"
    )


def test_checkpoints_run_folded_in_either_memory_layout_with_the_same_logits(checkpoints):
    """unet-predict's inference form: conv-BatchNorm folded, contiguous or channels-last, or auto (the
    faster on the first batch, kept after it): the logits of the checkpoint's own network every time."""
    images = np.random.default_rng(4).standard_normal((2, 1, 40, 56)).astype(np.float32)
    module, _ = module_from_checkpoint(checkpoints["pixelshuffle"])
    with torch.no_grad():
        expected = module.net(torch.from_numpy(images)).numpy()
    for memory_format in ("contiguous", "channels_last", "auto"):
        predictor = load_predictor(checkpoints["pixelshuffle"], memory_format=memory_format)
        np.testing.assert_allclose(predictor(images), expected, atol=1e-4)
        np.testing.assert_allclose(predictor(images), expected, atol=1e-4)  # after auto has chosen
        assert predictor.run.memory_format in ("contiguous", "channels_last")
    with pytest.raises(ValueError, match="memory_format=.*: expected one of auto, contiguous, channels_last"):
        load_predictor(checkpoints["pixelshuffle"], memory_format="nhwc")


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (150, 233), dtype=np.uint8)).save(folder / "slice.png")
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    return folder


def test_predict_writes_mask_overlay_and_probabilities_for_any_size(checkpoints, images, tmp_path):
    predictor, inputs = load_predictor(checkpoints["transposed"]), collect_inputs(str(images))
    options = {"tile_size": 64, "save_probabilities": True, "tta": True}
    summary = predict_files(predictor, inputs, tmp_path / "out", **options)
    assert summary["images"] == 2
    out = tmp_path / "out"
    for stem, size in [("slice", (233, 150)), ("photo", (30, 40))]:
        with Image.open(out / f"{stem}_mask.png") as mask:
            assert mask.size == size and max(np.asarray(mask).ravel()) < 3
        with Image.open(out / f"{stem}_overlay.png") as overlay:
            assert overlay.size == size and overlay.mode == "RGB"
        probabilities = np.load(out / f"{stem}_probs.npy")
        assert probabilities.shape == (3, size[1], size[0]) and probabilities.dtype == np.float16
        np.testing.assert_allclose(probabilities.astype(np.float32).sum(0), 1.0, atol=3e-3)
        with Image.open(out / f"{stem}_mask.png") as mask:  # float16 storage may flip near-ties only
            assert (np.asarray(mask) == probabilities.argmax(0)).mean() > 0.99
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary left
    assert summary["megapixels"] == pytest.approx((150 * 233 + 40 * 30) / 1e6)
    assert summary["megapixels_per_s"] > 0 and summary["peak_memory_mb"] > 0
    with pytest.raises(FileExistsError):
        predict_files(predictor, inputs, tmp_path / "out", **options)


def test_onnx_and_torchscript_predictions_equal_the_checkpoints(checkpoints, exported, images, tmp_path):
    outputs = {}
    for name, model in [("ckpt", checkpoints["maxunpool"]), ("onnx", exported("maxunpool", "onnx")[0]),
                        ("ts", exported("maxunpool", "torchscript")[0])]:  # fmt: skip
        out = tmp_path / name
        predict_files(
            load_predictor(model),
            collect_inputs(f"{images}/*.png"),
            out,
            tile_size=64,
            save_probabilities=True,
        )
        outputs[name] = np.load(out / "slice_probs.npy").astype(np.float32)
    np.testing.assert_allclose(outputs["onnx"], outputs["ckpt"], atol=1e-3)
    np.testing.assert_allclose(outputs["ts"], outputs["ckpt"], atol=1e-3)


def test_cli_errors_name_the_problem(tmp_path, monkeypatch, capsys):
    """The commands' entry points in this process: the same exit codes and output, without a torch import
    each; the installed commands run end to end in test_export_runtimes.py."""

    def command(*args: str):
        return run_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)

    result = command("unet-predict", "ckpt_path=missing.ckpt", "input=x", "output=y", "tile=3")
    assert result.returncode != 0 and "Could not override 'tile'" in result.stderr
    result = command("unet-predict", "--help")  # lists the keys
    assert result.returncode == 0 and "tile_size: 512" in result.stdout
    result = command("unet-export", "format=onnx")
    assert result.returncode == 2 and "ckpt_path" in result.stderr
    result = command("unet-predict", "ckpt_path=missing.ckpt", "input=x", "output=y")
    assert result.returncode == 2 and "missing.ckpt" in result.stderr
