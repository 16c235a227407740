"""``SyntheticDataModule``: the framework's default data, generated in memory, nothing on disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unet.data.base import SPLITS, SegmentationDataModule, as_pair
from unet.data.errors import DataError
from unet.data.shapes import CLASS_NAMES, generate_shapes
from unet.data.sources import ArraySource

# Pixel mean/std of the generated images at the default settings, measured over 2000 images
# (gray 0.499 / 0.184, RGB 0.500 / 0.176 per channel).
SYNTHETIC_MEAN = 0.5
SYNTHETIC_STD = 0.18


class SyntheticDataModule(SegmentationDataModule):
    """Circles, squares and triangles on noisy textured backgrounds: 4 classes (0 = background).

    Train, val and test are generated from disjoint seeds derived from ``seed``, so the same seed gives
    identical data and the splits never share images. See :mod:`unet.data.shapes` for the generator.

    Args:
        num_train / num_val / num_test: images per split (``num_test=0``: no test split).
        image_size: ``H`` or ``[H, W]``.
        in_channels: 1 (gray), 3 (colour backgrounds and shapes), or any other count (each channel tinted on its own).
        num_shapes: shapes per image, ``n`` or ``[min, max]`` (placed in a ``ceil(sqrt(max))``-square grid).
        noise: standard deviation of the per-pixel Gaussian noise (image range [0, 1]).
        mean / std: normalisation; ``None`` -> 0.5 / 0.18 per channel (measured at the defaults).
        **common: the base keywords (batch_size, num_workers, transforms, seed, ...).
    """

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 200,
        image_size: int | Sequence[int] = 64,
        in_channels: int = 1,
        num_shapes: int | Sequence[int] = (1, 4),
        noise: float = 0.08,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(
            num_classes=len(CLASS_NAMES),
            class_names=list(CLASS_NAMES),
            in_channels=in_channels,
            ignore_index=None,
            mean=(SYNTHETIC_MEAN,) * in_channels if mean is None else mean,
            std=(SYNTHETIC_STD,) * in_channels if std is None else std,
            **common,
        )
        self.sizes = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
        if self.sizes["train"] < 1 or self.sizes["val"] < 1 or self.sizes["test"] < 0:
            raise DataError(f"need num_train >= 1, num_val >= 1 and num_test >= 0, got {self.sizes}")
        self.image_size = as_pair(image_size, "image_size")
        self.num_shapes = as_pair(num_shapes, "num_shapes")
        if not 0 <= self.num_shapes[0] <= self.num_shapes[1] or self.num_shapes[1] < 1:
            raise DataError(f"num_shapes must satisfy 0 <= min <= max, max >= 1; got {self.num_shapes}")
        if min(self.image_size) < 8:
            raise DataError(f"image_size must be at least 8 pixels, got {self.image_size}")
        self.noise = float(noise)

    @property
    def has_test(self) -> bool:
        return self.sizes["test"] > 0

    def split_source(self, split: str) -> ArraySource:
        """Generate the split: ``(N, H, W, C)`` uint8 images, ``(N, H, W)`` uint8 masks."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(len(SPLITS))[SPLITS.index(split)])
        images, masks = generate_shapes(
            self.sizes[split], self.image_size, self.in_channels, self.num_shapes, self.noise, rng
        )
        return ArraySource(images, masks)
