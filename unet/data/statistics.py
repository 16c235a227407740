"""Class statistics of a split's raw masks: what class weighting and rare-class cropping are computed from.

Counted once per datamodule and split (:func:`split_class_counts` caches them on the datamodule), from
the raw, un-augmented samples of the split's source, with ``ignore_index`` pixels left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from unet.data.errors import DataError
from unet.data.sources import SampleSource

# Called with every raw ``(image (H, W, C), mask (H, W))`` of a split by the pass that counts its classes.
SampleVisitor = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class ClassCounts:
    """Per-class counts over a split's masks, each an int64 array ``(K,)``.

    Attributes:
        pixels: labelled pixels of each class.
        images: images in which the class has at least one pixel.
        image_pixels: labelled pixels of the images in which the class is present (SegNet's denominator).
        ignored: ``ignore_index`` pixels (an int).
        sizes: the distinct ``(height, width)`` of the split's images (read in the same pass).
    """

    pixels: np.ndarray
    images: np.ndarray
    image_pixels: np.ndarray
    ignored: int
    sizes: frozenset[tuple[int, int]] = frozenset()

    @property
    def present(self) -> np.ndarray:
        """``(K,)`` bool: the class has pixels in the split."""
        return self.pixels > 0

    def frequencies(self) -> np.ndarray:
        """SegNet's class frequency ``(K,)``: pixels of the class / pixels of the images it is present in.

        Absent classes get 0. Normalising by the images that contain the class (not by all pixels)
        keeps a class that is large where it appears from counting as rare only because it appears
        in few images.
        """
        return np.divide(
            self.pixels, self.image_pixels, out=np.zeros(len(self.pixels)), where=self.image_pixels > 0
        )

    def rare_classes(self) -> list[int]:
        """Present classes whose frequency (:meth:`frequencies`) is below the median over present classes.

        They are exactly the classes median-frequency balancing weights above 1.
        """
        frequencies = self.frequencies()
        present = self.present
        if not present.any():
            return []
        median = float(np.median(frequencies[present]))
        return [int(c) for c in np.flatnonzero(present & (frequencies < median))]


def class_pixel_counts(
    source: SampleSource, num_classes: int, ignore_index: int | None, visit: SampleVisitor | None = None
) -> ClassCounts:
    """Count the classes of every mask of ``source`` (reads every raw sample once).

    ``visit(image, mask)`` sees every checked sample in the same pass, so other per-sample statistics
    (the data fingerprint's intensities and object sizes) cost no second reading of the files.
    """
    pixels = np.zeros(num_classes, dtype=np.int64)
    images = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    ignored = 0
    sizes = set()
    for index in range(len(source)):
        image, mask = source[index]
        sizes.add((int(image.shape[0]), int(image.shape[1])))
        labels = mask.ravel() if ignore_index is None else mask[mask != ignore_index]
        ignored += mask.size - labels.size
        counts = np.bincount(labels.astype(np.int64, copy=False), minlength=num_classes)
        if len(counts) > num_classes:
            raise DataError(f"mask {index} holds class {len(counts) - 1}, beyond num_classes={num_classes}")
        present = counts > 0
        pixels += counts
        images += present
        image_pixels[present] += labels.size
        if visit is not None:
            visit(image, mask)
    return ClassCounts(pixels, images, image_pixels, ignored, frozenset(sizes))


def split_class_counts(
    datamodule: Any, split: str, source: SampleSource | None = None, visit: SampleVisitor | None = None
) -> ClassCounts:
    """:func:`class_pixel_counts` of ``split``, computed once per datamodule object and then reused.

    ``source`` is the split's raw source when the caller already holds it (the datamodule while it
    builds the split's dataset); otherwise it is ``datamodule.dataset(split).source``. ``visit(image,
    mask)`` is called with every raw sample of the split: in the counting pass when the counts are
    computed now, in a pass of its own when they were already cached, so a caller gathering other
    per-sample statistics reads every sample once either way.
    """
    cache: dict[str, ClassCounts] = datamodule.__dict__.setdefault("_class_counts", {})
    if split not in cache or visit is not None:
        source = datamodule.dataset(split).source if source is None else source
    if split not in cache:
        cache[split] = class_pixel_counts(source, datamodule.num_classes, datamodule.ignore_index, visit)
    elif visit is not None:
        for index in range(len(source)):
            visit(*source[index])
    return cache[split]
