"""Class probabilities for an image of any size: padding, overlapping tiles with Gaussian blending, flip TTA."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exponent = np.exp(shifted)
    return exponent / exponent.sum(axis=axis, keepdims=True)


def gaussian_weights(height: int, width: int, sigma_scale: float = 0.125) -> np.ndarray:
    """``(H, W)`` weights peaking at the tile centre: tile borders, where context is missing, count least."""
    ys = np.arange(height) - (height - 1) / 2
    xs = np.arange(width) - (width - 1) / 2
    weights = np.exp(-(ys[:, None] ** 2) / (2 * (sigma_scale * height) ** 2)) * np.exp(
        -(xs[None, :] ** 2) / (2 * (sigma_scale * width) ** 2)
    )
    return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length``, about ``overlap`` apart, the last flush with the end."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def pad_to_minimum(image: np.ndarray, min_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad ``(C, H, W)`` at the bottom/right to at least ``min_size``; returns it and the original size."""
    height, width = image.shape[-2:]
    pad_h, pad_w = max(0, min_size - height), max(0, min_size - width)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "edge"
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    return image, (height, width)


def flip_variants(tta: bool) -> list[tuple[int, ...]]:
    """Axes to flip for test-time augmentation: none, or none + horizontal + vertical + both."""
    return [(), (-1,), (-2,), (-2, -1)] if tta else [()]


def predict_probabilities(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    num_classes: int,
    min_size: int,
    tile_size: int = 512,
    overlap: float = 0.25,
    tta: bool = False,
    batch_size: int = 4,
) -> np.ndarray:
    """Softmax probabilities ``(K, H, W)`` for a normalised image ``(C, H, W)`` of any size.

    An image no larger than ``tile_size`` runs whole (exactly the network's own output); a larger one
    runs as overlapping tiles whose probabilities are blended with Gaussian weights. Images smaller
    than ``min_size`` are padded and the result cropped back. An image of more than one batch of
    tiles shows a progress bar over its tiles (a large scan can take minutes); smaller ones stay quiet.
    """
    if tile_size < min_size:
        raise ValueError(f"tile_size {tile_size} is below the network's minimum input size {min_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    padded, (height, width) = pad_to_minimum(image.astype(np.float32, copy=False), min_size)
    full_h, full_w = padded.shape[-2:]
    tile_h, tile_w = min(tile_size, full_h), min(tile_size, full_w)
    windows = [
        (y, x) for y in tile_starts(full_h, tile_h, overlap) for x in tile_starts(full_w, tile_w, overlap)
    ]
    weights = gaussian_weights(tile_h, tile_w) if len(windows) > 1 else np.ones((tile_h, tile_w), np.float32)
    total = np.zeros((num_classes, full_h, full_w), np.float32)
    norm = np.zeros((full_h, full_w), np.float32)
    variants = flip_variants(tta)
    progress = tqdm(
        total=len(windows) * len(variants),
        desc="tiles",
        unit="tile",
        leave=False,
        disable=len(windows) <= batch_size,
    )
    for flips in variants:
        view = np.flip(padded, axis=flips) if flips else padded
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            tiles = np.stack([view[:, y : y + tile_h, x : x + tile_w] for y, x in chunk])
            probabilities = softmax(predict(tiles))
            if flips:
                probabilities = np.flip(probabilities, axis=flips)
            for (y, x), tile in zip(chunk, probabilities, strict=True):
                # Windows are in flipped coordinates; map them back before accumulating.
                y0 = full_h - y - tile_h if -2 in flips else y
                x0 = full_w - x - tile_w if -1 in flips else x
                total[:, y0 : y0 + tile_h, x0 : x0 + tile_w] += tile * weights
                norm[y0 : y0 + tile_h, x0 : x0 + tile_w] += weights
            progress.update(len(chunk))
    progress.close()
    return total[:, :height, :width] / norm[:height, :width]
