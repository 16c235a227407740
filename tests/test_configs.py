"""Every config group composes, and a one-batch dry run (trainer=debug) works for every data config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ISBI_ROOT, TINY_RUN, requires_isbi
from hydra.utils import instantiate
from PIL import Image
from test_data_oxford_pet import make_fake_pets

from unet.apps.train import train

TINY_MODEL = ["model.base_channels=8", "model.depth=2", "callbacks.progress_bar=null"]


def dry_run(compose_config, *overrides: str) -> dict[str, float]:
    return train(compose_config("train", "trainer=debug", *TINY_MODEL, *overrides))


def test_synthetic_dry_run(compose_config):
    metrics = dry_run(compose_config, *TINY_RUN)
    assert {"val/miou", "val/dice", "val/pixel_acc", "test/miou"} <= set(metrics)


def write_folder_data(root: Path, count: int = 6) -> None:
    """Gray images with masks in raw values 0 (background), 255 (object) and 100 (void)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 52), dtype=np.uint8)).save(root / "images" / f"{index}.png")
        mask = rng.choice(np.array([0, 255, 100], dtype=np.uint8), (40, 52))
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")


def test_folder_dry_run_with_value_mapping_and_ignore_index(compose_config, tmp_path):
    write_folder_data(tmp_path / "mine")
    metrics = dry_run(
        compose_config,
        "data=folder",
        f"data.root={tmp_path / 'mine'}",
        "data.in_channels=1",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.class_names=[background,object]",
        "+data.mask_mapping={0: 0, 255: 1, 100: 255}",
        "data.ignore_index=255",
        "data.val_fraction=0.34",
    )
    assert {"val/iou/background", "val/iou/object"} <= set(metrics)


def test_folder_needs_a_root(compose_config):
    with pytest.raises(Exception, match="root"):
        dry_run(compose_config, "data=folder")


@requires_isbi
def test_isbi2012_dry_run(compose_config):
    metrics = dry_run(
        compose_config,
        "data=isbi2012",
        f"data.root={ISBI_ROOT}",
        "data.train_transforms.0.height=64",
        "data.train_transforms.0.width=64",
    )
    assert {"val/iou/membrane", "val/iou/cell", "test/miou"} <= set(metrics)


def test_oxford_pet_dry_run_on_a_fake_copy(compose_config, tmp_path):
    make_fake_pets(tmp_path / "pets")
    metrics = dry_run(
        compose_config,
        "data=oxford_pet",
        f"data.root={tmp_path / 'pets'}",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.val_fraction=0.2",
    )
    assert {"val/iou/pet", "val/iou/background", "test/miou"} <= set(metrics)


@pytest.mark.parametrize(
    ("group", "option", "key", "expected"),
    [
        ("trainer", "cpu", "trainer.accelerator", "cpu"),
        ("trainer", "gpu", "trainer.precision", "bf16-mixed"),
        ("trainer", "ddp", "trainer.strategy", "ddp"),
        ("trainer", "debug", "trainer.fast_dev_run", 1),
        ("logger", "csv", "logger.csv._target_", "lightning.pytorch.loggers.CSVLogger"),
        ("model/loss", "ce", "model.loss.dice_weight", 0.0),
        ("model/loss", "dice", "model.loss.ce_weight", 0.0),
    ],
)
def test_config_groups_compose(compose_config, group, option, key, expected):
    from omegaconf import OmegaConf

    cfg = compose_config("train", f"{group}={option}")
    assert OmegaConf.select(cfg, key) == expected


def test_objects_are_built_from_their_target(compose_config):
    cfg = compose_config("train")
    loss = instantiate(cfg.model.loss)
    assert type(loss).__name__ == "SegmentationLoss"
    assert instantiate(cfg.data).num_classes == 4
