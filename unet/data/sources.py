"""Sample sources: indexable collections of raw ``(image (H, W, C), mask (H, W))`` numpy pairs.

A source knows where samples come from (memory, files, a torchvision dataset); the dataset on top applies
the augmentation pipeline. Wrappers compose: files -> resized -> cached in memory. Sources may also tell a
sample's ``name(index)`` (its image file) and raw ``size(index)`` ``(H, W)`` without decoding it, which
the batching checks use (:func:`sample_name`, :func:`sample_sizes`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from unet.data.errors import SizeMismatchError
from unet.data.io import decode, image_size, read_image, read_mask, source_files, source_name
from unet.data.layout import Pair
from unet.data.masks import MaskEncoder
from unet.data.transforms import resize_transform

Sample = tuple[np.ndarray, np.ndarray]


class SampleSource(Protocol):
    """What a :class:`~unet.data.dataset.SegmentationDataset` reads from."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class ArraySource:
    """Samples already in memory: an ``(N, H, W, C)`` array or a list of ``(H, W, C)`` arrays, masks alike.

    ``names``: what each sample is called in messages (the files a cached source was decoded from).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray] | np.ndarray,
        masks: Sequence[np.ndarray] | np.ndarray,
        names: Sequence[str] | None = None,
    ):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        self.images = images
        self.masks = masks
        self.names = None if names is None else list(names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        return self.images[index], self.masks[index]

    def name(self, index: int) -> str:
        return self.names[index] if self.names is not None else f"sample {index}"

    def file(self, index: int) -> str | None:
        return self.names[index] if self.names is not None else None

    def size(self, index: int) -> tuple[int, int]:
        return tuple(self.images[index].shape[:2])  # type: ignore[return-value]


def sample_file(source: SampleSource, index: int) -> str | None:
    """The image file sample ``index`` of ``source`` was read from; ``None`` for generated samples."""
    file = getattr(source, "file", None)
    return file(index) if callable(file) else None


def sample_name(source: SampleSource, index: int) -> str:
    """What sample ``index`` of ``source`` is called in messages: its image file when the source knows it."""
    name = getattr(source, "name", None)
    return name(index) if callable(name) else f"sample {index}"


def sample_sizes(source: SampleSource) -> list[tuple[int, int]] | None:
    """Raw ``(H, W)`` of every sample, from memory or file headers; ``None`` when the source cannot tell."""
    size = getattr(source, "size", None)
    if not callable(size):
        return None
    sizes = [size(index) for index in range(len(source))]
    return None if any(s is None for s in sizes) else sizes


def check_same_size(image: np.ndarray, mask: np.ndarray, image_name: str, mask_name: str) -> None:
    """An image and its mask must cover the same pixels."""
    if image.shape[:2] != mask.shape[:2]:
        raise SizeMismatchError(
            f"image {image_name} is {image.shape[1]}x{image.shape[0]} (WxH) but its mask {mask_name} is "
            f"{mask.shape[1]}x{mask.shape[0]}"
        )


def read_roi(path: Path, shape: tuple[int, int], image_name: str) -> np.ndarray:
    """A region-of-interest mask as ``(H, W)`` bool, the image's size: inside where it is not black (read as
    displayed: a palette file's colours, not its indices, which an optimising GIF writer reorders)."""
    raw = decode(path, as_mask=False)
    if raw.shape[:2] != shape:
        raise SizeMismatchError(
            f"image {image_name} is {shape[1]}x{shape[0]} (WxH) but its ROI {path} is {raw.shape[1]}x{raw.shape[0]}"
        )
    return raw.reshape(*shape, -1).any(axis=-1)


class FileSource:
    """Image/mask file pairs (:class:`~unet.data.layout.Pair`), decoded on every access (wrap in
    :func:`cache_source` to decode once).

    An image is a file, a page of a stack or a tuple of single-channel files (:data:`unet.data.io.ImageFile`);
    a mask a file or a page. Masks in a lossy format are refused unless the encoder allows them
    (:meth:`MaskEncoder.check_lossless`). A pair's region of interest sets every mask pixel outside it to
    ``outside_label`` (the ignore index), so the loss, the metrics and the statistics never see them.
    """

    def __init__(
        self, pairs: Sequence[Pair], in_channels: int, encoder: MaskEncoder, outside_label: int | None = None
    ) -> None:
        self.pairs = list(pairs)
        self.in_channels = in_channels
        self.encoder = encoder
        self.outside_label = outside_label

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        pair = self.pairs[index]
        image = read_image(pair.image, self.in_channels)
        raw = read_mask(pair.mask)
        self.encoder.check_lossless(raw, source_files(pair.mask)[0])
        mask = self.encoder(raw, str(pair.mask))
        check_same_size(image, mask, source_name(pair.image), str(pair.mask))
        if pair.roi is not None:
            if self.outside_label is None:
                raise ValueError("a region of interest needs an outside_label")  # the datamodule sets one
            inside = read_roi(pair.roi, mask.shape[:2], source_name(pair.image))
            mask = np.where(inside, mask, np.asarray(self.outside_label, dtype=mask.dtype))
        return image, mask

    def name(self, index: int) -> str:
        return source_name(self.pairs[index].image)

    def file(self, index: int) -> str | None:
        """The image's file (a tuple's first: per-image scores name a sample by it), a page as ``stack.tif/page3``."""
        image_file = self.pairs[index].image
        return str(image_file[0] if isinstance(image_file, tuple) else image_file)

    def size(self, index: int) -> tuple[int, int]:
        return image_size(self.pairs[index].files()[0])


class ResizedSource:
    """Another source resized to a fixed ``(H, W)`` (bilinear image, nearest mask) so batches collate."""

    def __init__(self, source: SampleSource, size: tuple[int, int]) -> None:
        self.source = source
        self.resized_to = (int(size[0]), int(size[1]))
        self.resize = resize_transform(size)

    def name(self, index: int) -> str:
        return sample_name(self.source, index)

    def file(self, index: int) -> str | None:
        return sample_file(self.source, index)

    def size(self, index: int) -> tuple[int, int]:
        return self.resized_to

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Sample:
        image, mask = self.source[index]
        out = self.resize(image=image, mask=mask)
        image = out["image"] if out["image"].ndim == 3 else out["image"][..., None]
        return image, out["mask"]


class SubsetSource:
    """The samples of ``source`` at ``indices`` (a split carved out of a larger set)."""

    def __init__(self, source: SampleSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.source[self.indices[index]]

    def name(self, index: int) -> str:
        return sample_name(self.source, self.indices[index])

    def file(self, index: int) -> str | None:
        return sample_file(self.source, self.indices[index])

    def size(self, index: int) -> tuple[int, int] | None:
        size = getattr(self.source, "size", None)
        return size(self.indices[index]) if callable(size) else None


def cache_source(source: SampleSource, threads: int | None = None) -> ArraySource:
    """Decode every sample once into memory (threads: PIL and tifffile decode without holding the GIL).

    Decoding PNGs/JPEGs on every epoch is wasted work when the decoded set fits in RAM; forked DataLoader
    workers then share the arrays copy-on-write.
    """
    if isinstance(source, ArraySource):
        return source
    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        samples = list(pool.map(source.__getitem__, range(len(source))))
    files = [sample_file(source, index) for index in range(len(source))]
    names = None if None in files else files
    return ArraySource([image for image, _ in samples], [mask for _, mask in samples], names)


def finish_source(source: SampleSource, image_size: tuple[int, int] | None, cache: bool) -> SampleSource:
    """The common tail of file-backed sources: optional fixed-size resize, then optional in-memory cache."""
    if image_size is not None:
        source = ResizedSource(source, image_size)
    return cache_source(source) if cache else source
