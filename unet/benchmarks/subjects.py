"""What ``unet-benchmark mode=tiled`` segments: an untrained network on a synthetic scan (speed alone), or
a trained checkpoint on a mosaic of its validation images, whose labels tell each runtime's quality.

The mosaic repeats the validation images (flipped in turn) to the benchmark's size, so the quality of
the class map that was timed is measured against labels the network never trained on. Many small
photos are crops of the same image; static int8 calibrates on the run's training images (as
``unet-export quantize=static`` does) or, untrained, on another synthetic image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from unet.benchmarks.settings import TiledSettings
from unet.export.metadata import model_metadata
from unet.export.quality import calibration_images, run_dataset
from unet.models.loading import LoadedModel, load_checkpoint

# Training images static int8 calibrates on (unet-export's default calibration_images).
CALIBRATION_IMAGES = 16


@dataclass
class Subject:
    """The network, the large image ``(H, W, C)`` uint8 and its labels ``(H, W)`` (``None``: synthetic),
    small photos ``(h, w, C)`` uint8, the normalisation and classes, and int8's calibration inputs
    ``(1, C, h, w)`` float32 normalised."""

    net: nn.Module
    image: np.ndarray
    labels: np.ndarray | None
    photos: list[np.ndarray]
    mean: list[float]
    std: list[float]
    class_names: list[str]
    ignore_index: int | None
    calibration: list[np.ndarray]
    description: str


def synthetic_scan(size: int | tuple[int, int], channels: int, seed: int = 0) -> np.ndarray:
    """A ``(H, W, channels)`` uint8 image of smooth blobs and noise: as fast to segment as any other."""
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, channels)).astype(np.float32)
    blobs = np.repeat(np.repeat(coarse, 64, axis=0), 64, axis=1)[:height, :width]
    return np.clip(blobs + rng.normal(0, 20, blobs.shape), 0, 255).astype(np.uint8)


def normalise(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(C, H, W)`` float32, as training normalised it."""
    pixels = image.transpose(2, 0, 1).astype(np.float32) / 255.0
    return (pixels - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]


def synthetic_subject(net: nn.Module, settings: TiledSettings) -> Subject:
    """An untrained ``net`` on a synthetic scan (mean 0, std 1: pixels in [0, 1])."""
    channels = settings.in_channels
    mean, std = [0.0] * channels, [1.0] * channels
    tile = settings.tile_size
    calibration_image = synthetic_scan(2 * tile, channels, settings.seed + 1)
    calibration = [
        normalise(calibration_image[y : y + tile, x : x + tile], mean, std)[None]
        for y in (0, tile)
        for x in (0, tile)
    ]
    photos = [
        synthetic_scan(settings.small_size, channels, settings.seed + 2 + index)
        for index in range(settings.small_images)
    ]
    image = synthetic_scan(settings.size, channels, settings.seed)
    names = [f"class {index}" for index in range(settings.num_classes)]
    return Subject(
        net,
        image,
        None,
        photos,
        mean,
        std,
        names,
        None,
        calibration,
        "an untrained network, a synthetic image",
    )


def mosaic(images: list[np.ndarray], size: int) -> np.ndarray:
    """``images`` (of one shape) repeated row by row to ``size`` x ``size``, each repeat flipped another way."""
    height, width = images[0].shape[:2]
    rows, columns = -(-size // height), -(-size // width)
    flips = [(), (1,), (0,), (0, 1)]
    cells = [np.flip(images[k % len(images)], flips[(k // len(images)) % 4]) for k in range(rows * columns)]
    grid = [np.concatenate(cells[r * columns : (r + 1) * columns], axis=1) for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:size, :size])


def checkpoint_subject(path: str | Path, settings: TiledSettings) -> Subject:
    """A trained checkpoint, its validation images as a mosaic of ``settings.size`` with their labels,
    photos cut from it, and its training images to calibrate int8."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    loaded = LoadedModel.from_checkpoint(checkpoint, path)
    metadata = model_metadata(loaded, None, "checkpoint")
    dataset = run_dataset("val", metadata, checkpoint, path)
    mean, std = np.float32(metadata["mean"]), np.float32(metadata["std"])
    images, labels = [], []
    for index in range(len(dataset)):  # by index: a dataset need not end its iteration
        image, target = dataset[index]  # (C, H, W) normalised, (H, W)
        pixels = (image.numpy() * std[:, None, None] + mean[:, None, None]) * 255.0
        images.append(np.clip(pixels.round(), 0, 255).astype(np.uint8).transpose(1, 2, 0))
        labels.append(target.numpy()[..., None])
    image = mosaic(images, settings.size)
    label_map = mosaic(labels, settings.size)[..., 0]
    rng = np.random.default_rng(settings.seed)
    height, width = settings.small_size
    corners = [
        (rng.integers(0, image.shape[0] - height + 1), rng.integers(0, image.shape[1] - width + 1))
        for _ in range(settings.small_images)
    ]
    photos = [np.ascontiguousarray(image[y : y + height, x : x + width]) for y, x in corners]
    calibration = list(calibration_images(metadata, checkpoint, path, CALIBRATION_IMAGES))
    return Subject(
        loaded.network,
        image,
        label_map,
        photos,
        metadata["mean"],
        metadata["std"],
        metadata["class_names"],
        metadata["ignore_index"],
        calibration,
        f"{path} (trained), a mosaic of its {len(images)} validation images",
    )
