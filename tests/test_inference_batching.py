"""Many small images segmented in batches (``unet-predict batch_images``), and ``unet.load``'s runtime
choice (the same one ``unet-predict runtime_choice=auto`` makes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_export_predict import save_checkpoint

import unet
from unet.export import export_checkpoint
from unet.inference import load_predictor, predict_files
from unet.inference.files import ImageBatches, collect_inputs, find_rois, images_per_batch
from unet.inference.tiling import TilingSettings
from unet.inference.writing import BackgroundWriter
from unet.profiling.machine import cpu_model
from unet.utils.errors import ConfigError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", "bilinear")


@pytest.fixture
def photos(tmp_path) -> Path:
    """Five 24x32 photos, two 32x24 ones, and one image larger than a 32-pixel tile."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(5):
        Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8)).save(folder / f"a{index}.png")
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 24), dtype=np.uint8)).save(folder / f"b{index}.png")
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)).save(folder / "large.png")
    return folder


def counting_batches(predictor) -> list[int]:
    """The batch size of every forward pass ``predictor`` makes from now on."""
    sizes: list[int] = []
    logits = predictor.logits

    def counted(images):
        sizes.append(len(images))
        return logits(images)

    predictor.logits = counted
    return sizes


@pytest.mark.parametrize("with_probabilities", [True, False])
def test_batched_images_give_the_masks_and_probabilities_of_one_by_one(
    checkpoint, photos, tmp_path, with_probabilities
):
    """Images of one shape share forward passes, as many as fit in batch_size tiles' pixels (2 x 32^2
    holds two 24x32 images); each mask equals the one made alone, the larger image is tiled as before.
    With probabilities and flips; and without either, where the masks come from the logits directly."""
    inputs = collect_inputs(str(photos))
    options = {
        "tile_size": 32,
        "batch_size": 2,
        "save_probabilities": with_probabilities,
        "tta": with_probabilities,
    }
    flips = 4 if with_probabilities else 1
    written = {}
    passes = {}
    for batched in (False, True):
        predictor = load_predictor(checkpoint, memory_format="contiguous")
        passes[batched] = counting_batches(predictor)
        out = tmp_path / str(batched)
        summary = predict_files(predictor, inputs, out, batch_images=batched, **options)
        assert summary["images"] == 8 and summary["failed"] == []
        written[batched] = {
            path.stem: (
                np.asarray(Image.open(out / f"{path.stem}_mask.png")),
                np.load(out / f"{path.stem}_probs.npy") if with_probabilities else None,
            )
            for path in inputs
        }
        assert with_probabilities == any(out.glob("*_probs.npy"))
    for stem, (mask, probabilities) in written[False].items():
        assert np.array_equal(written[True][stem][0], mask), stem
        if with_probabilities:
            np.testing.assert_allclose(written[True][stem][1], probabilities, atol=2e-3)
    # alone: 7 small images + the large one's tiles (2 batches), each once per flip; batched: 24x32 in
    # 2+2+1, 32x24 in 2, and the large one's tiles as before
    assert passes[False].count(1) == flips * 7
    assert sorted(passes[True]) == sorted([2] * flips * 3 + [1] * flips + passes[False][-2 * flips :])


def test_an_unreadable_image_is_listed_and_the_batched_others_are_written(checkpoint, photos, tmp_path):
    (photos / "broken.png").write_bytes(b"not an image")
    predictor = load_predictor(checkpoint)
    summary = predict_files(
        predictor, collect_inputs(str(photos)), tmp_path / "out", tile_size=32, skip_errors=True
    )
    assert summary["images"] == 8 and [item["file"] for item in summary["failed"]] == [
        str(photos / "broken.png")
    ]
    assert len(list((tmp_path / "out").glob("*_mask.png"))) == 8


def test_a_write_that_fails_on_the_writer_thread_is_listed_or_raised(checkpoint, photos, tmp_path):
    """Batched images' outputs are written on a background thread; a failure there (an ROI of the wrong
    size) is listed against its own image with skip_errors, every other image written; without it, the
    run stops with that error, in the caller's thread."""
    rois = tmp_path / "rois"
    rois.mkdir()
    for path in collect_inputs(str(photos)):
        height, width = np.asarray(Image.open(path)).shape
        wrong = path.stem == "a3"
        Image.fromarray(np.full((height + wrong, width), 255, np.uint8)).save(rois / path.name)
    inputs = collect_inputs(str(photos))
    options = {"tile_size": 32, "batch_size": 2, "rois": find_rois(inputs, rois, None)}
    predictor = load_predictor(checkpoint)
    summary = predict_files(predictor, inputs, tmp_path / "out", skip_errors=True, **options)
    assert summary["images"] == 7 and [item["file"] for item in summary["failed"]] == [str(photos / "a3.png")]
    assert "a3" in summary["failed"][0]["error"] and "ROI" in summary["failed"][0]["error"]
    assert sorted(path.name for path in (tmp_path / "out").glob("*_mask.png")) == sorted(
        f"{path.stem}_mask.png" for path in inputs if path.stem != "a3"
    )
    with pytest.raises(Exception, match="its ROI"):
        predict_files(predictor, inputs, tmp_path / "stopped", **options)


def test_the_background_writer_keeps_the_order_and_bounds_what_waits(tmp_path):
    writer = BackgroundWriter()
    done: list[str] = []

    def write(name: str) -> int:
        if name == "bad":
            raise OSError("disk full")
        done.append(name)
        return len(name)

    for name in ("a", "bb", "bad", "cccc"):
        writer.submit(Path(name), lambda name=name: write(name))
    first = list(writer.done_beyond(2))  # the two oldest, each finished when handed back
    assert [(path.name, future.result()) for path, future in first] == [("a", 1), ("bb", 2)]
    rest = list(writer.done_beyond(0))
    assert [path.name for path, _ in rest] == ["bad", "cccc"] and rest[1][1].result() == 4
    with pytest.raises(OSError, match="disk full"):
        rest[0][1].result()
    assert done == ["a", "bb", "cccc"]
    writer.close()


def test_a_batch_holds_the_pixels_of_batch_size_tiles_and_few_shapes_wait():
    tiling = TilingSettings(tile_size=512, batch_size=4)
    assert images_per_batch((360, 480, 3), tiling) == 6  # 4 x 512^2 pixels hold six 360x480 photos
    assert images_per_batch((512, 512, 1), tiling) == 4 and images_per_batch((256, 200, 1), tiling) == 20
    batches = ImageBatches(TilingSettings(tile_size=8, batch_size=1))  # one 8x8 image per batch
    ready = [batches.add(Path(f"{size}.png"), np.zeros((size, 5, 1))) for size in (1, 2, 3, 4, 5)]
    # none fills its batch (64 // (size * 5) images); at most 4 shapes wait, the oldest leaves first
    assert [[len(group) for group in groups] for groups in ready] == [[], [], [], [], [1]]
    assert [group[0][1].shape[0] for group in batches.rest()] == [2, 3, 4, 5]


def measured_as(path: Path, checkpoint: Path, speed: float, change: float) -> None:
    """Give ``path`` a sidecar saying it was exported from ``checkpoint`` and measured here as given."""
    sidecar_file = Path(f"{path}.json")
    sidecar = json.loads(sidecar_file.read_text()) if sidecar_file.is_file() else {}
    here = cpu_model()
    sidecar.update(
        checkpoint=str(checkpoint.resolve()),
        speed={"cpu": here, "megapixels_per_s": speed, "checkpoint": {"cpu": here, "megapixels_per_s": 1.0}},
        quality={"miou_change": change},
    )
    sidecar_file.write_text(json.dumps(sidecar))


def test_unet_load_runs_the_fastest_form_and_falls_back_in_one_line_without_openvino(
    checkpoint, tmp_path, monkeypatch, caplog
):
    """unet.load chooses as unet-predict does: the OpenVINO form would be fastest but OpenVINO is hidden,
    so the weights export runs, and the line says so; runtime_choice="given" runs the file given."""
    folder = tmp_path / "run"
    folder.mkdir()
    model = folder / "best.ckpt"
    model.write_bytes(checkpoint.read_bytes())
    weights, _ = export_checkpoint(model, "weights", folder / "best.weights.pt")
    measured_as(weights, model, 2.0, 0.0)
    (folder / "best.xml").write_bytes(b"")
    measured_as(folder / "best.xml", model, 3.0, 0.0)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with caplog.at_level("INFO", logger="unet.api.model"):
        loaded = unet.load(model)
    (line,) = [
        record.getMessage() for record in caplog.records if "runtime_choice=auto" in record.getMessage()
    ]
    assert line == loaded.runtime_choice
    assert line.startswith(
        "runtime_choice=auto: best.weights.pt (pytorch, 2.00 megapixels/s, mIoU +0.0000) is the fastest here"
    )
    assert "best.xml: openvino is not installed here" in line and "\n" not in line
    assert loaded.path == model and loaded.running == weights and "running best.weights.pt" in repr(loaded)
    image = np.random.default_rng(0).integers(0, 256, (20, 28), dtype=np.uint8)
    given = unet.load(model, runtime_choice="given")
    assert given.running == model and given.runtime_choice is None
    assert np.array_equal(loaded.predict(image), given.predict(image))
    with pytest.raises(ConfigError, match="runtime_choice=fastest: expected one of auto, given"):
        unet.load(model, runtime_choice="fastest")
