"""Every config group composes, and a one-batch dry run (trainer=debug) works for every data config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ISBI_ROOT, TINY_RUN, replacing, requires_isbi
from hydra.utils import instantiate
from PIL import Image
from test_data_oxford_pet import make_fake_pets

from unet.planning import without_plan
from unet.training.run import train
from unet.utils.config import compose_config as compose

TINY_MODEL = ["model.net.base_channels=8", "model.net.depth=2", "callbacks.progress_bar=null"]


def dry_run(compose_config, *overrides: str, model: list[str] = TINY_MODEL) -> dict[str, float]:
    return train(compose_config("train", "trainer=debug", *model, *overrides))


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
def test_isbi2012_dry_run(compose_config, fixed_training_speed):
    metrics = dry_run(
        compose_config,
        "data=isbi2012",
        f"data.root={ISBI_ROOT}",
        "augment.crop=64",
        "data.batch_size=2",
        # the smallest network: validation and test score whole 512x512 slices, one forward pass each
        model=replacing(TINY_MODEL, "model.net.base_channels=4", "model.net.depth=1"),
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
        ("trainer", "gpu", "trainer.accelerator", "gpu"),
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
    cfg = compose_config("train", "model.loss.class_weights=null")  # auto: planned from the masks
    loss = instantiate(cfg.model.loss)
    assert type(loss).__name__ == "SegmentationLoss"
    assert instantiate(cfg.data).num_classes == 4


@pytest.mark.parametrize("data", ["synthetic", "folder", "isbi2012", "oxford_pet"])
def test_choosing_data_leaves_the_model_and_trainer_defaults_alone(compose_config, data):
    """`data=` only selects data: the defaults read in configs/model/ and configs/trainer/ are the run's."""
    default, chosen = compose_config("train"), compose_config("train", f"data={data}")
    assert chosen.model == default.model and chosen.trainer == default.trainer


def test_the_default_run_trains_the_network_its_config_file_describes(compose_config):
    import yaml

    net_file = yaml.safe_load(
        (Path(__file__).parents[1] / "configs" / "model" / "net" / "unet.yaml").read_text()
    )
    cfg = compose_config("train")
    for key, value in net_file.items():
        if not str(value).startswith("${"):
            assert cfg.model.net[key] == value, key


def test_the_isbi2012_experiment_selects_its_data_and_leaves_the_run_to_the_plan(compose_config):
    cfg = compose_config("train", "experiment=isbi2012")
    assert cfg.data._target_ == "unet.data.ISBI2012DataModule"
    assert cfg.model.optimizer.lr == "auto" and cfg.trainer.check_val_every_n_epoch == "auto"
    assert cfg.augment.crop == "auto" and cfg.data.batch_size == "auto"


def test_common_trainer_arguments_override_without_a_plus(compose_config):
    overrides = {
        "max_steps": 7, "limit_train_batches": 3, "limit_val_batches": 0.5, "gradient_clip_val": 1.0,
        "accumulate_grad_batches": 2, "val_check_interval": 0.5, "num_sanity_val_steps": 0,
    }  # fmt: skip
    cfg = compose_config("train", *(f"trainer.{key}={value}" for key, value in overrides.items()))
    trainer = instantiate(without_plan(cfg.trainer), logger=False, enable_progress_bar=False)
    assert trainer.max_steps == 7 and trainer.limit_train_batches == 3 and trainer.limit_val_batches == 0.5
    assert trainer.gradient_clip_val == 1.0 and trainer.accumulate_grad_batches == 2
    assert trainer.val_check_interval == 0.5 and trainer.num_sanity_val_steps == 0


def test_runs_are_filed_under_the_method_or_the_peer_network(compose_config):
    assert compose_config("train", "model.upsample=maxunpool").logger.tensorboard.name == "maxunpool"
    cfg = compose_config("train", "experiment=isbi2012_monai_basicunet")
    assert cfg.model.upsample is None and cfg.model.net._target_ == "unet.models.peers.monai_basicunet"
    assert cfg.logger.tensorboard.name == "monai_basicunet"
    assert cfg.data._target_ == "unet.data.ISBI2012DataModule"
    # the plain peer recipe of issue #15, typed, not planned
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 1.0e-3
    assert cfg.model.scheduler is None and cfg.trainer.precision == "32-true" and cfg.data.batch_size == 4
    assert [t._target_.rpartition(".")[2] for t in cfg.data.train_transforms] == [
        "PadIfNeeded", "RandomCrop", "HorizontalFlip", "VerticalFlip",
    ]  # fmt: skip


def test_a_newly_registered_upsampler_needs_no_config_change(compose_config):
    """The README's "Adding a method": one registered class, and configs and sweeps list it."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason='needs pip install -e ".[cluster]"')
    import torch.nn.functional as F
    from torch import nn

    from unet.models import UPSAMPLERS
    from unet.models.upsamplers.base import Upsampler, register_upsampler

    @register_upsampler("bicubic_test")
    class BicubicUpsampler(Upsampler):
        def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
            super().__init__(in_channels, out_channels, scale)
            self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)

        def forward(self, x, size, indices=None):
            return F.interpolate(self.project(x), size=size, mode="bicubic", align_corners=False)

    try:
        sweeper = compose("train", ["hydra/sweeper=optuna_miou"], return_hydra_config=True).hydra.sweeper
        assert "bicubic_test" in sweeper.params["model.upsample"]
        metrics = dry_run(compose_config, *TINY_RUN, "model.upsample=bicubic_test")
        assert 0 <= metrics["val/miou"] <= 1
    finally:
        del UPSAMPLERS["bicubic_test"]
