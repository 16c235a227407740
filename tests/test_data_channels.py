"""Images of any number of channels: multi-channel TIFFs in either layout, single-channel files stacked as
channels, per-channel normalisation from the fingerprint, colour augmentations skipped, training,
predicting and exporting with the same channels."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import tifffile
import torch
from conftest import TINY_RUN
from PIL import Image
from test_export_predict import save_checkpoint
from test_planning import machine

from unet.data import FolderDataModule, ImageReadError
from unet.data.fingerprint import compute_fingerprint
from unet.data.io import read_image
from unet.export.exporters import export_checkpoint
from unet.inference import load_predictor, predict_files
from unet.inference.files import overlay
from unet.planning import AUTO, PlanInputs, make_plan
from unet.training.run import train
from unet.utils.visualize import denormalize

SIZE = (16, 24)  # (H, W)


def channel_planes(channels: int, seed: int = 0) -> np.ndarray:
    """``(C, H, W)`` uint16 planes, each channel in its own intensity range (so their statistics differ)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(1000 * c, 1000 * c + 4000, SIZE, dtype=np.uint16) for c in range(channels)])


def write_planar(path: Path, planes: np.ndarray) -> Path:
    tifffile.imwrite(path, planes, photometric="minisblack", planarconfig="separate")
    return path


def write_folder(root: Path, channels: int, count: int = 4) -> dict[str, np.ndarray]:
    """``count`` planar ``channels``-channel TIFFs with binary masks; returns the planes by stem."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    planes = {}
    for index in range(count):
        stem = f"s{index}"
        planes[stem] = channel_planes(channels, seed=index)
        write_planar(root / "images" / f"{stem}.tif", planes[stem])
        mask = np.zeros(SIZE, np.uint8)
        mask[:, index + 2 :] = 1
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return planes


def folder(root: Path, channels: int, **options) -> FolderDataModule:
    defaults = {"num_classes": 2, "batch_size": 2, "num_workers": 0, "val_stems": ["s0"], "val_fraction": 0.0}
    return FolderDataModule(root=str(root), in_channels=channels, **{**defaults, **options})


# --- reading --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "write",
    [
        lambda path, planes: write_planar(path, planes),  # one page, (C, H, W) planes
        lambda path, planes: tifffile.imwrite(  # one page, (H, W, C) samples
            path, planes.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig"
        ),
        lambda path, planes: tifffile.imwrite(path, planes),  # C pages of one channel (tifffile's default)
    ],
    ids=["planar", "contiguous", "pages"],
)
def test_a_five_channel_tiff_is_read_channels_last_in_every_layout(tmp_path, write):
    planes = channel_planes(5)
    write(tmp_path / "five.tif", planes)
    image = read_image(tmp_path / "five.tif", 5)
    assert image.shape == (*SIZE, 5) and image.dtype == np.float32
    np.testing.assert_array_equal(image, planes.transpose(1, 2, 0) / np.float32(65535))


def test_a_file_of_other_channels_is_refused_naming_it_and_both_counts(tmp_path):
    write_planar(tmp_path / "four.tif", channel_planes(4))
    with pytest.raises(ImageReadError, match=r"four\.tif has 4 channel\(s\) but in_channels is 5"):
        read_image(tmp_path / "four.tif", 5)
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(ImageReadError, match=r"gray\.png has 1 channel\(s\) but in_channels is 4"):
        read_image(tmp_path / "gray.png", 4)
    # Gray -> 3 and RGB -> 1 are converted as before.
    assert read_image(tmp_path / "gray.png", 3).shape == (*SIZE, 3)
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(tmp_path / "rgb.png")
    assert read_image(tmp_path / "rgb.png", 1).shape == (*SIZE, 1)


def test_single_channel_files_of_a_sample_are_stacked_in_order(tmp_path):
    planes = [np.full(SIZE, 10 * (c + 1), np.uint8) for c in range(3)]
    files = []
    for c, plane in enumerate(planes):
        files.append(tmp_path / f"stain{c}.png")
        Image.fromarray(plane).save(files[-1])
    tifffile.imwrite(tmp_path / "deep.tif", np.full(SIZE, 65535, np.uint16))  # 16-bit among 8-bit files
    image = read_image((*files, tmp_path / "deep.tif"), 4)
    assert image.shape == (*SIZE, 4) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], [10 / 255, 20 / 255, 30 / 255, 1.0], rtol=1e-6)
    assert np.array_equal(read_image(tuple(files[::-1]), 3)[0, 0], [30, 20, 10])  # the order given
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageReadError, match=r"small\.png is 8x8 \(WxH\) but .*stain0\.png, stacked with it"):
        read_image((files[0], tmp_path / "small.png"), 2)
    with pytest.raises(
        ImageReadError, match=r"stain0\.png;.*stain1\.png has 2 channel\(s\) but in_channels is 5"
    ):
        read_image(tuple(files[:2]), 5)


def test_a_manifest_row_of_several_single_channel_files_is_one_sample_of_their_channels(tmp_path):
    (tmp_path / "masks").mkdir()
    for stem in ("a", "b"):
        for c in range(2):
            Image.fromarray(np.full(SIZE, 50 * (c + 1), np.uint8)).save(tmp_path / f"{stem}_c{c}.png")
        Image.fromarray(np.zeros(SIZE, np.uint8)).save(tmp_path / "masks" / f"{stem}.png")
    (tmp_path / "pairs.csv").write_text(
        "image,mask,split\na_c0.png;a_c1.png,masks/a.png,val\nb_c0.png;b_c1.png,masks/b.png,train\n"
    )
    dm = folder(tmp_path, 2, manifest="pairs.csv", val_stems=None, mean=[0, 0], std=[1, 1])
    image, mask = dm.dataset("train")[0]
    assert image.shape == (2, *SIZE) and mask.shape == SIZE
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([50 / 255, 100 / 255]))
    assert dm.dataset("train").source.names == [str(tmp_path / "b_c0.png")]  # named by its first file


# --- normalisation and augmentation ---------------------------------------------------------------
def test_five_channels_are_normalised_with_their_own_planned_statistics(tmp_path):
    planes = write_folder(tmp_path, 5)
    fingerprint = compute_fingerprint(folder(tmp_path, 5))
    # (N, C, H, W) as read: float32 intensities in [0, 1]
    train = (np.stack([planes[stem] for stem in ("s1", "s2", "s3")]) / np.float32(65535)).astype(np.float64)
    np.testing.assert_allclose(fingerprint.mean, train.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(fingerprint.std, train.std(axis=(0, 2, 3)), rtol=1e-9)
    plan = make_plan(
        PlanInputs(fingerprint, 1, "cpu", None),
        {"data.mean": AUTO, "data.std": AUTO, "augment.kind": AUTO},
        machine(),
    )
    mean, std = plan.value("data.mean"), plan.value("data.std")
    assert len(mean) == len(std) == 5 and plan.value("augment.kind") == "microscopy"

    image, _ = folder(tmp_path, 5, mean=mean, std=std).dataset("train")[0]
    assert image.shape == (5, *SIZE)
    expected = (planes["s1"] / np.float32(65535) - np.array(mean, np.float32)[:, None, None]) / np.array(
        std, np.float32
    )[:, None, None]
    torch.testing.assert_close(image, torch.from_numpy(expected.astype(np.float32)))


def test_colour_augmentations_are_skipped_for_other_channel_counts_with_a_line(tmp_path, caplog):
    write_folder(tmp_path, 4)
    transforms = [A.ColorJitter(p=1), A.HorizontalFlip(p=0.5), A.PlanckianJitter(p=1)]
    with caplog.at_level(logging.INFO, logger="unet.data.transforms"):
        dm = folder(tmp_path, 4, train_transforms=transforms, mean=[0.5] * 4, std=[0.25] * 4)
    assert [type(t).__name__ for t in dm.split_transforms["train"]] == ["HorizontalFlip"]
    assert (
        "data.train_transforms: ColorJitter, PlanckianJitter skipped: the images have 4 channels"
        in caplog.text
    )
    image, _ = dm.dataset("train")[0]  # the rest of the list runs on 4 channels
    assert image.shape == (4, *SIZE)
    kept = folder(tmp_path, 1, train_transforms=transforms).split_transforms["train"]
    assert [type(t).__name__ for t in kept] == ["ColorJitter", "HorizontalFlip"]  # gray takes colour jitter


# --- training, predicting, exporting --------------------------------------------------------------
def test_a_few_steps_train_on_four_channel_images(compose_config, tmp_path):
    write_folder(tmp_path / "data", 4)
    tiny_model = [o for o in TINY_RUN if not o.startswith("data.") and not o.startswith("trainer.max_epochs")]
    cfg = compose_config(
        "train",
        "data=folder", f"data.root={tmp_path / 'data'}", "data.in_channels=4", "data.num_workers=0",
        "data.batch_size=2", "+data.val_stems=[s0]", "data.epoch_size=null", "data.mean=[0.1,0.1,0.1,0.1]",
        "data.std=[0.05,0.05,0.05,0.05]", "data/augment=natural", "augment.crop=16", "trainer.max_epochs=1",
        *tiny_model,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)
    assert 0 <= metrics["val/pixel_acc"] <= 1
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["in_channels"] == 4


def test_predict_and_export_take_the_checkpoints_channels(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "run" / "best.ckpt", "bilinear", in_channels=4)
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_planar(inputs / "four.tif", channel_planes(4))
    predictor = load_predictor(checkpoint)
    summary = predict_files(predictor, [inputs / "four.tif"], tmp_path / "out", tile_size=64)
    assert summary["images"] == 1
    assert np.asarray(Image.open(tmp_path / "out" / "four_mask.png")).shape == SIZE
    write_planar(inputs / "three.tif", channel_planes(3))
    with pytest.raises(ImageReadError, match=r"three\.tif has 3 channel\(s\) but in_channels is 4"):
        predict_files(predictor, [inputs / "three.tif"], tmp_path / "out3", tile_size=64)
    exported, _ = export_checkpoint(
        checkpoint, "torchscript", tmp_path / "m.pt"
    )  # traced on a 4-channel input
    from_export = predict_files(
        load_predictor(exported), [inputs / "four.tif"], tmp_path / "out_pt", tile_size=64
    )
    assert from_export["images"] == 1
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "out_pt" / "four_mask.png")),
        np.asarray(Image.open(tmp_path / "out" / "four_mask.png")),
    )


def test_images_of_any_channels_are_shown_by_their_first_channels():
    """Prediction panels and overlays: of more than 3 channels the first 3, of 2 the first as gray."""
    two = torch.stack([torch.full((4, 4), 0.2), torch.full((4, 4), 0.8)])
    assert denormalize(two, [0, 0], [1, 1])[:, 0, 0].tolist() == [51, 51, 51]
    five = torch.arange(5, dtype=torch.float32)[:, None, None].expand(5, 4, 4) / 10
    assert denormalize(five, [0] * 5, [1] * 5)[:, 0, 0].tolist() == [0, 26, 51]
    pixels = np.stack([np.full((4, 4), 40, np.uint8), np.full((4, 4), 200, np.uint8)], axis=-1)
    assert overlay(pixels, np.zeros((4, 4), np.int64), None)[0, 0].tolist() == [40, 40, 40]
