"""The data/augment presets: photographs are never turned upside down, ISBI 2012 keeps its exact augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unet.data.transforms import SamplePipeline

REPO = Path(__file__).resolve().parents[1]
# `auto` is a choice between these, made by the plan (tests/test_planning.py).
PRESETS = sorted(
    path.stem for path in (REPO / "configs" / "data" / "augment").glob("*.yaml") if path.stem != "auto"
)
DATA_CONFIGS = ["synthetic", "folder", "isbi2012", "oxford_pet", "camvid"]

# configs/data/isbi2012.yaml's list before the presets (commit 60747f3), which the README's ISBI numbers
# were measured with.
ISBI2012_BEFORE_PRESETS = yaml.safe_load("""
- {_target_: albumentations.RandomCrop, height: 256, width: 256}
- {_target_: albumentations.HorizontalFlip, p: 0.5}
- {_target_: albumentations.VerticalFlip, p: 0.5}
- {_target_: albumentations.RandomRotate90, p: 0.5}
- {_target_: albumentations.RandomBrightnessContrast, brightness_limit: 0.2, contrast_limit: 0.2, p: 0.5}
""")


def train_transforms(compose_config, *overrides: str) -> list[dict]:
    """The composed ``data.train_transforms`` as plain dicts (not instantiated)."""
    cfg = compose_config("train", *overrides)
    return OmegaConf.to_container(cfg.data, resolve=True)["train_transforms"] or []


def rows_image(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and mask whose value grows from the top row to the bottom one: row order stays readable."""
    rows = np.repeat((np.arange(height) * 255 // (height - 1)).astype(np.uint8)[:, None], width, axis=1)
    return np.stack([rows] * 3, axis=-1), rows


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("preset", ["natural", "natural_flip"])
def test_the_natural_presets_never_flip_vertically_or_rotate(compose_config, preset, seed):
    """Photographs keep their up (the plan's choices for RGB folder data): whatever the scale, crop, flip
    and colour, mask values still grow downwards."""
    transforms = instantiate(
        train_transforms(
            compose_config, "data=folder", "data.root=unused", f"data/augment={preset}", "augment.crop=256"
        )
    )
    pipeline = SamplePipeline(transforms, mean=[0.5] * 3, std=[0.25] * 3, seed=seed)
    # Large enough that even the smallest scale (0.75) needs no padding, whose mirroring would fold rows.
    image, mask = rows_image(360, 480)
    for index in range(50):
        _, out = pipeline(image, mask, epoch=0, index=index)
        column = out[:, out.shape[1] // 2].numpy()
        assert (np.diff(column) >= 0).all() and column[-1] > column[0], (
            f"sample {index}: the top is no longer on top"
        )


def test_natural_flip_only_crops_and_flips_the_pixels_it_keeps(compose_config):
    """``natural_flip`` changes no value and no scale: every sample is a crop of the image, mirrored or not."""
    transforms = instantiate(
        train_transforms(
            compose_config, "data=folder", "data.root=unused", "data/augment=natural_flip", "augment.crop=64"
        )
    )
    # Each pixel holds its own row and column (and noise): a sample's corner tells which crop it must be.
    rows, columns = np.mgrid[0:90, 0:120]
    noise = np.random.default_rng(0).integers(0, 256, (90, 120))
    image = np.stack([rows, columns, noise], axis=-1).astype(np.uint8)
    mask = np.random.default_rng(1).integers(0, 5, (90, 120), dtype=np.uint8)
    pipeline = SamplePipeline(transforms, mean=[0.0] * 3, std=[1 / 255] * 3)  # the pixels as they were
    mirrored = 0
    for index in range(40):
        out_image, out_mask = pipeline(image, mask, epoch=0, index=index)
        pixels, labels = out_image.round().byte().permute(1, 2, 0).numpy(), out_mask.numpy()
        top, corner_column = int(pixels[0, 0, 0]), int(pixels[0, 0, 1])
        flip = bool(pixels[0, 1, 1] < corner_column)
        left = 120 - 1 - corner_column if flip else corner_column
        source_image, source_mask = (image[:, ::-1], mask[:, ::-1]) if flip else (image, mask)
        assert np.array_equal(source_image[top : top + 64, left : left + 64], pixels), f"sample {index}"
        assert np.array_equal(source_mask[top : top + 64, left : left + 64], labels), f"sample {index}"
        mirrored += flip
    assert 5 < mirrored < 35  # horizontal flips, about half the time


def test_isbi2012_keeps_the_augmentation_of_its_readme_numbers(compose_config):
    """The list before presets plus only an inactive (p=0) elastic step: the very same samples."""
    now = train_transforms(
        compose_config, "data=isbi2012", "augment.crop=256"
    )  # the crop the plan chooses on a CPU
    assert [t for t in now if t.get("p") != 0.0] == ISBI2012_BEFORE_PRESETS
    image = np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)
    mask = (image > 128).astype(np.uint8)
    before, after = (
        SamplePipeline(instantiate(ts), mean=[0.5], std=[0.25], seed=5)
        for ts in (ISBI2012_BEFORE_PRESETS, now)
    )
    for index in range(30):
        (old_image, old_mask), (new_image, new_mask) = (
            before(image, mask, 0, index),
            after(image, mask, 0, index),
        )
        assert old_image.equal(new_image) and old_mask.equal(new_mask)


@pytest.mark.parametrize("data", DATA_CONFIGS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_applies_to_every_data_config(compose_config, data, preset):
    """`data/augment=<preset>` works from the command line whatever the data, and builds albumentations."""
    transforms = instantiate(
        train_transforms(compose_config, f"data={data}", f"data/augment={preset}", "++augment.crop=64")
    )
    image, mask = rows_image(80, 96)
    out_image, out_mask = SamplePipeline(transforms, mean=[0.5] * 3, std=[0.25] * 3)(image, mask)
    assert out_image.shape[0] == 3 and out_image.shape[1:] == out_mask.shape


def test_crop_is_one_key_and_train_transforms_stays_overridable(compose_config):
    crops = [
        t
        for t in train_transforms(compose_config, "data=folder", "data/augment=natural", "augment.crop=96")
        if "height" in t
    ]
    assert crops and all(t["height"] == t["width"] == 96 for t in crops)
    assert train_transforms(compose_config, "data=folder", "data.train_transforms=null") == []
    own = train_transforms(
        compose_config, "data=isbi2012", "data.train_transforms=[{_target_: albumentations.Transpose}]"
    )
    assert own == [{"_target_": "albumentations.Transpose"}]


@pytest.mark.parametrize(
    ("data", "preset"),
    [
        ("folder", "auto"),
        ("camvid", "auto"),
        ("isbi2012", "microscopy"),
        ("synthetic", "dihedral"),
        ("oxford_pet", "natural_affine"),
    ],
)
def test_each_data_config_defaults_to_its_preset(compose_config, data, preset):
    chosen = train_transforms(compose_config, f"data={data}", f"data/augment={preset}")
    assert train_transforms(compose_config, f"data={data}") == chosen


def test_elastic_is_one_key_and_keeps_labels(compose_config):
    """`augment.elastic=1` deforms every sample; masks stay label maps (nearest), the borders mirrored."""
    image = np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)
    mask = (image // 86).astype(np.uint8)
    off, on = (
        SamplePipeline(
            instantiate(
                train_transforms(compose_config, "data=isbi2012", "augment.crop=256", f"augment.elastic={p}")
            ),
            [0.5],
            [0.25],
        )
        for p in (0.0, 1.0)
    )
    (_, plain), (_, warped) = off(image, mask), on(image, mask)
    assert not plain.equal(warped)
    assert set(warped.unique().tolist()) <= {0, 1, 2}
