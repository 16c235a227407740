"""Rare-class-aware crops: centred on an under-represented class, and a pure function of (seed, epoch, index)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from unet.data.base import SegmentationDataModule
from unet.data.errors import DataError
from unet.data.sources import ArraySource
from unet.data.statistics import split_class_counts
from unet.data.transforms import with_rare_class_crop

SIZE, CROP = 64, 16
FLIPS = [A.RandomCrop(CROP, CROP), A.HorizontalFlip(p=0.5), A.RandomRotate90(p=0.5)]
# As configs/data/augment/natural.yaml: scale jitter and padding before the crop.
NATURAL = [A.RandomScale(0.25), A.PadIfNeeded(CROP, CROP, border_mode=4), *FLIPS]


def blob_source(count: int = 8, seed: int = 0) -> ArraySource:
    """Class 1 fills the lower three quarters, class 0 the rest, class 2 is one 3x3 blob per image."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, SIZE, SIZE), np.uint8)
    masks[:, SIZE // 4 :] = 1
    for mask in masks:
        top, left = rng.integers(0, SIZE - 3, size=2)
        mask[top : top + 3, left : left + 3] = 2
    images = rng.integers(0, 255, (count, SIZE, SIZE, 1), dtype=np.uint8)
    return ArraySource(images, masks)


class BlobDataModule(SegmentationDataModule):
    def __init__(self, transforms: list = FLIPS, **common) -> None:
        super().__init__(
            num_classes=3,
            class_names=["background", "road", "pole"],
            in_channels=1,
            ignore_index=None,
            mean=[0.5],
            std=[0.25],
            num_workers=0,
            train_transforms=transforms,
            **common,
        )

    @property
    def has_test(self) -> bool:
        return False

    def split_source(self, split: str) -> ArraySource:
        return blob_source()


def crops_with_pole(datamodule: BlobDataModule, epochs: int = 3) -> list[bool]:
    dataset = datamodule.dataset("train")
    return [bool((dataset[(e, i)][1] == 2).any()) for e in range(epochs) for i in range(len(dataset))]


def test_the_small_blob_is_the_rare_class():
    datamodule = BlobDataModule(rare_class_crop_p=1.0)
    assert split_class_counts(datamodule, "train").rare_classes() == [2]


@pytest.mark.parametrize("transforms", [FLIPS, NATURAL], ids=["crop_flips", "scale_pad_crop_flips"])
def test_with_p_one_every_crop_holds_a_rare_pixel(transforms):
    with_crop = crops_with_pole(BlobDataModule(transforms, rare_class_crop_p=1.0))
    assert all(with_crop)
    plain = crops_with_pole(BlobDataModule(transforms, rare_class_crop_p=0.0))
    assert not all(plain)  # the test means something: plain random crops often miss the blob


def test_the_crop_is_a_function_of_seed_epoch_and_index():
    first = BlobDataModule(rare_class_crop_p=0.5, seed=3).dataset("train")
    second = BlobDataModule(rare_class_crop_p=0.5, seed=3).dataset("train")
    for key in [(0, 0), (1, 0), (2, 5)]:
        image, mask = first[key]
        assert torch.equal(image, second[key][0]) and torch.equal(mask, second[key][1])
        assert torch.equal(mask, first[key][1])  # asked again, in another order: the same crop
    assert mask.shape == (CROP, CROP)
    assert any(not torch.equal(first[(0, i)][1], first[(1, i)][1]) for i in range(8))


def test_rare_crops_need_a_random_crop_to_size_the_window():
    with pytest.raises(DataError, match="RandomCrop"):
        with_rare_class_crop([A.HorizontalFlip()], [2], 0.5)
    with pytest.raises(DataError, match="rare_class_crop_p"):
        BlobDataModule(rare_class_crop_p=1.5)
