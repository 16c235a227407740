"""What would crash training is found before it: training images of different sizes without a crop, a
crop larger than an image, images below the network's smallest input, an epoch drop_last leaves empty;
by the training loader and by unet-check-data (the data layer's check_data and the app)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
from PIL import Image
from test_image_reading import write_jpeg_binary_masks
from test_reliability import folder_args, write_folder

from unet.apps import check_data as check_data_app
from unet.data import DataError, FolderDataModule
from unet.data.inspect import check_data


def write_sizes(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """One gray image and 0/1 mask per stem, of the given ``(H, W)``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, size in sizes.items():
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(rng.integers(0, 2, size, dtype=np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


def folder(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "in_channels": 1, "batch_size": 2, "num_workers": 0, "mean": [0], "std": [1]}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def check(root: Path, tmp_path: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str]:
    """``unet-check-data`` on a folder, in this process: (exit code, stderr)."""
    arguments = [*folder_args(root, *extra), f"hydra.run.dir={tmp_path / 'check'}"]
    monkeypatch.setattr(sys, "argv", ["unet-check-data", *arguments])
    try:
        check_data_app.main()
    except SystemExit as exit_info:
        return int(exit_info.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


MIXED = {"a": (24, 32), "b": (40, 32), "c": (24, 32), "v1": (24, 32), "v2": (30, 20)}


# --- the training loader --------------------------------------------------------------------------
@pytest.mark.parametrize("cache", [True, False])
def test_training_images_of_different_sizes_without_a_crop_are_refused_naming_two_files(tmp_path, cache):
    dm = folder(write_sizes(tmp_path, MIXED), val_stems=["v1", "v2"], val_fraction=0.0, cache=cache)
    dm.setup()
    with pytest.raises(
        DataError,
        match=r"training images of different sizes cannot share a batch of 2: .*a\.png is 24x32 \(HxW\) but "
        r".*b\.png is 40x32.*augment\.crop=N.*data\.image_size=\[H,W\]",
    ):
        next(iter(dm.train_dataloader()))


def test_a_crop_makes_them_batch_and_validation_serves_whole_images_one_by_one(tmp_path):
    crop = [A.RandomCrop(16, 16)]
    dm = folder(write_sizes(tmp_path, MIXED), val_stems=["v1", "v2"], val_fraction=0.0, train_transforms=crop)
    dm.setup()
    assert next(iter(dm.train_dataloader()))[0].shape == (2, 1, 16, 16)
    assert sorted(tuple(images.shape) for images, _ in dm.val_dataloader()) == [
        (1, 1, 24, 32),
        (1, 1, 30, 20),
    ]


def test_a_crop_larger_than_an_image_is_refused_naming_it(tmp_path):
    sizes = {"a": (24, 32), "small": (12, 40), "v": (24, 32)}
    dm = folder(
        write_sizes(tmp_path, sizes),
        val_stems=["v"],
        val_fraction=0.0,
        train_transforms=[A.RandomCrop(16, 16)],
    )
    dm.setup()
    with pytest.raises(
        DataError, match=r"training augmentation fails on .*small\.png \(12x40 HxW\): Crop size"
    ):
        dm.train_dataloader()


# --- check_data -----------------------------------------------------------------------------------
def test_check_data_lists_every_problem_and_writes_them(tmp_path, capsys):
    sizes = {"a": (24, 32), "b": (40, 32), "v": (12, 40)}
    dm = folder(
        write_sizes(tmp_path / "d", sizes), val_stems=["v"], val_fraction=0.0, batch_size=4, drop_last=True
    )
    with pytest.raises(
        DataError, match=r"^3 problems would stop training: \(1\) drop_last with batch_size 4"
    ) as error:
        check_data(dm, tmp_path / "run", min_size=16, train_transforms=[])
    assert "training images of different sizes" in str(error.value)
    assert "val (scored whole) image" in str(error.value) and "v.png is 12x40 (HxW)" in str(error.value)
    assert "problems that would stop training" in capsys.readouterr().out
    problems = json.loads((tmp_path / "run" / "data_summary.json").read_text())["problems"]
    assert len(problems) == 3 and "16x16" in problems[2]


def test_check_data_judges_the_training_crop_not_the_images(tmp_path):
    sizes = {"a": (64, 64), "b": (48, 64), "v": (64, 64)}
    root = write_sizes(tmp_path / "d", sizes)
    dm = folder(root, val_stems=["v"], val_fraction=0.0)
    with pytest.raises(
        DataError, match=r"training samples leave the augmentation at 8x8 .*smallest input of 16x16"
    ):
        check_data(dm, tmp_path / "run", min_size=16, train_transforms=[A.RandomCrop(8, 8)])
    summary = check_data(dm, tmp_path / "run2", min_size=16, train_transforms=[A.RandomCrop(32, 32)])
    assert summary["train"]["distinct_sizes"] == 2


def test_unet_check_data_refuses_images_below_the_networks_smallest_input(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d", size=(24, 32))
    code, err = check(root, tmp_path, monkeypatch, capsys, "model.net.depth=5")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "is 24x32 (HxW), smaller than the network's smallest input of 32x32" in err
    code, err = check(root, tmp_path, monkeypatch, capsys, "model.net.depth=3")
    assert code == 0, err


def test_unet_check_data_uses_the_configured_crop_and_train_scale(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d", size=(24, 32))
    crop = ["data/augment=microscopy", "augment.crop=12", "data.train_transforms=${augment.transforms}"]
    code, err = check(root, tmp_path, monkeypatch, capsys, "model.net.depth=3", *crop)
    assert code == 0, err  # a 12-pixel crop feeds a depth-3 U-Net (8 pixels at least)
    code, err = check(root, tmp_path, monkeypatch, capsys, "model.net.depth=3", *crop, "data.train_scale=0.5")
    assert code == 2 and "leave the augmentation at 12x12" in err and "smallest input of 16x16" in err
    code, err = check(root, tmp_path, monkeypatch, capsys, "model.net.depth=3", *crop, "augment.crop=40")
    assert code == 2 and "Crop size" in err and "augment.crop=N" in err


def test_unet_check_data_leaves_auto_batch_sizes_to_the_plan(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d", count=3, size=(24, 32))  # 1 training image, drop_last
    code, err = check(root, tmp_path, monkeypatch, capsys, "data.batch_size=auto", "data.epoch_size=auto")
    assert code == 0, err
    code, err = check(root, tmp_path, monkeypatch, capsys, "data.batch_size=8")
    assert code == 2 and "drop_last with batch_size 8 but only 1 training samples" in err


def test_unet_check_data_refuses_jpeg_masks(tmp_path, monkeypatch, capsys):
    write_jpeg_binary_masks(tmp_path / "d")
    code, err = check(tmp_path / "d", tmp_path, monkeypatch, capsys)
    assert code == 2 and err.startswith("error: mask ") and "is saved as JPEG, a lossy format" in err
    code, err = check(tmp_path / "d", tmp_path, monkeypatch, capsys, "data.allow_lossy_masks=true")
    assert code == 2 and "holds values" in err and "expected only the mask_mapping keys [0, 255]" in err
