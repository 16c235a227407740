"""Regions of interest: pixels outside never count (loss, scores, per-image scores, fingerprint), predictions
can be limited to them, and a data set as its authors distribute it (DRIVE-like: TIFF images, GIF masks of
other names in manual/, a field-of-view mask per image in mask/) trains, evaluates and predicts as it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import run_in_process
from PIL import Image

from unet.data import FolderDataModule, SizeMismatchError
from unet.data.fingerprint import compute_fingerprint
from unet.evaluation.per_image import image_scores
from unet.training.losses import SegmentationLoss
from unet.training.metrics import SplitMetrics

SIZE = 32
INSIDE = (slice(4, 28), slice(6, 26))  # the field of view of every test image


def field_of_view() -> np.ndarray:
    roi = np.zeros((SIZE, SIZE), np.uint8)
    roi[INSIDE] = 255
    return roi


def write_drive(root: Path, seed: int = 0, outside_noise: int = 0) -> Path:
    """A DRIVE-like set: training/{images,manual,mask} (ids 21..26) and test/... (ids 01, 02).

    ``outside_noise`` seeds other image intensities and mask labels outside the field of view.
    """
    for split, ids, kind in (("training", range(21, 27), "training"), ("test", range(1, 3), "test")):
        for folder in ("images", "manual", "mask"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in ids:
            rng = np.random.default_rng(seed + i)
            image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            vessels = (rng.random((SIZE, SIZE)) < 0.3).astype(np.uint8)
            if outside_noise:
                other = np.random.default_rng(outside_noise + i)
                outside = field_of_view() == 0
                image[outside] = other.integers(0, 256, (int(outside.sum()), 3), dtype=np.uint8)
                vessels[outside] = other.integers(0, 2, int(outside.sum()), dtype=np.uint8)
            tifffile.imwrite(root / split / "images" / f"{i:02d}_{kind}.tif", image)
            Image.fromarray(vessels * 255).save(root / split / "manual" / f"{i:02d}_manual1.gif")
            Image.fromarray(field_of_view()).save(root / split / "mask" / f"{i:02d}_{kind}_mask.gif")
    return root


DRIVE_KEYS = {
    "train_images": "training/images",
    "train_masks": "training/manual",
    "test_images": "test/images",
    "test_masks": "test/manual",
    "mask_pattern": "{id}_manual1",
    "roi_dir": "mask",
    "roi_pattern": "{stem}_mask",
}


def drive(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "num_workers": 0, "batch_size": 2, "val_fraction": 0.34, **DRIVE_KEYS}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def targets(dm: FolderDataModule, split: str) -> torch.Tensor:
    return torch.cat([masks for _, masks in dm.dataloader(split)])


def test_outside_the_roi_is_the_ignore_index_and_a_given_one_is_kept(tmp_path):
    dm = drive(write_drive(tmp_path))
    assert dm.ignore_index == 255
    masks = targets(dm, "train")
    outside = torch.from_numpy(field_of_view() == 0)
    assert (masks[:, outside] == 255).all() and (masks[:, ~outside] <= 1).all()
    assert drive(tmp_path, ignore_index=7).ignore_index == 7


def test_a_pixel_outside_the_roi_never_moves_a_score(tmp_path):
    plain = drive(write_drive(tmp_path / "a"))
    noisy = drive(write_drive(tmp_path / "b", outside_noise=99))
    masks = targets(plain, "test")
    assert torch.equal(masks, targets(noisy, "test"))  # other labels outside: the same targets
    logits = torch.randn(len(masks), 2, SIZE, SIZE)
    moved = logits.clone()
    outside = torch.from_numpy(field_of_view() == 0)
    moved[:, :, outside] = torch.randn(len(masks), 2, int(outside.sum())) * 10
    loss = SegmentationLoss(ignore_index=plain.ignore_index)
    assert torch.allclose(loss(logits, masks), loss(moved, masks))
    scores = []
    for values in (logits, moved):
        metrics = SplitMetrics(plain.class_names, plain.ignore_index)
        metrics.update(values, masks, loss(values, masks))
        # The checkerboard score is a spectrum of the logits themselves, compared with no truth.
        scores.append({k: v for k, v in metrics.compute_and_reset().items() if k != "checkerboard"})
    assert scores[0] == scores[1]
    per_image = [
        image_scores(values, masks, plain.class_names, plain.ignore_index) for values in (logits, moved)
    ]
    for first, second in zip(*per_image, strict=True):
        first.pop("checkerboard"), second.pop("checkerboard")
        assert first == second


def test_the_fingerprint_sees_only_roi_pixels(tmp_path):
    plain = compute_fingerprint(drive(write_drive(tmp_path / "a")))
    noisy = compute_fingerprint(drive(write_drive(tmp_path / "b", outside_noise=99)))
    assert plain.mean == pytest.approx(noisy.mean) and plain.std == pytest.approx(noisy.std)
    assert plain.class_pixels == noisy.class_pixels
    inside = int((field_of_view() > 0).sum())
    assert sum(plain.class_pixels) == inside * 4  # the four training images (two carved into val)


def test_a_roi_of_another_size_is_refused_naming_it(tmp_path):
    root = write_drive(tmp_path)
    Image.fromarray(np.ones((16, 16), np.uint8)).save(root / "training" / "mask" / "21_training_mask.gif")
    dm = drive(root, val_fraction=0.2, seed=3)
    with pytest.raises(SizeMismatchError, match=r"21_training.tif is 32x32 \(WxH\) but its ROI .*is 16x16"):
        dm.setup()


def test_a_data_set_as_distributed_trains_evaluates_and_predicts_in_one_command_each(
    tmp_path, monkeypatch, capsys
):
    """Slow: trains a tiny network for one epoch, scores and predicts in the test process (seconds each)."""
    root = write_drive(tmp_path / "DRIVE")
    data = [f"data.{key}={value}" for key, value in DRIVE_KEYS.items() if "pattern" not in key]
    data += ['data.mask_pattern="{id}_manual1"', 'data.roi_pattern="{stem}_mask"']
    train = [
        "data=folder", f"data.root={root}", *data, "data.num_workers=0", "data.batch_size=2",
        "data.train_transforms=null", "data.epoch_size=null", "data.val_fraction=0.34",
        "model.net.base_channels=4", "model.net.depth=1", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "callbacks.progress_bar=null", "trainer.precision=32-true", "model.memory_format=contiguous",
        "model.net.norm=batch", "model.loss.class_weights=null", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    run = {"cwd": tmp_path, "monkeypatch": monkeypatch, "capsys": capsys}
    trained = run_in_process("unet-train", *train, **run)
    assert trained.returncode == 0, trained.stderr[-3000:]
    scored = run_in_process(
        "unet-eval", f"ckpt_path={tmp_path / 'run'}", f"hydra.run.dir={tmp_path / 'ev'}", **run
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["split"] == "test"
    predicted = run_in_process(
        "unet-predict", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}", f"input={root / 'test' / 'images'}",
        f"output={tmp_path / 'out'}", f"roi={root / 'test' / 'mask'}", 'roi_pattern="{stem}_mask"',
        f"hydra.run.dir={tmp_path / 'pr'}", **run,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    for name in ("01_test", "02_test"):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{name}_mask.png"))
        assert mask.shape == (SIZE, SIZE) and (mask[field_of_view() == 0] == 0).all()
