"""Segmenting an image of any size: padding, overlapping tiles with Gaussian blending, flip TTA, streamed
in rows of tiles so that memory does not grow with the image beyond its class map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from unet.utils.class_maps import class_map
from unet.utils.errors import ConfigError


@dataclass(frozen=True)
class TilingSettings:
    """How images are tiled: ``unet-predict``'s keys of the same names (``batch_size``: tiles per forward pass)."""

    tile_size: int = 512
    overlap: float = 0.25
    tta: bool = False
    batch_size: int = 4


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
    """Axes of a ``(B, C, H, W)`` batch to flip for test-time augmentation: none, or none + horizontal +
    vertical + both."""
    return [(), (-1,), (-2,), (-2, -1)] if tta else [()]


class _BlendBand:
    """The band of rows ``[top, top + tile_h)`` of a tiled image: blended probability sums and the
    weights summed into them, kept where the logits come out (a GPU's memory for a model on the GPU).
    Rows above the next tile row are final: their classes go to ``mask`` (and ``probabilities``)."""

    def __init__(
        self, mask: np.ndarray, tile: tuple[int, int], full_width: int, weights: torch.Tensor,
        probabilities: np.ndarray | None,
    ) -> None:  # fmt: skip
        self.mask, self.probabilities, self.weights = mask, probabilities, weights
        self.tile_h, self.tile_w = tile
        self.full_width = full_width
        self.top = 0
        self.total: torch.Tensor | None = None  # (K, tile_h, W), made at the first batch on its device
        self.norm: torch.Tensor | None = None  # (tile_h, W)

    def add(self, columns: list[int], blended: torch.Tensor) -> None:
        """Add the probabilities ``(B, K, tile_h, tile_w)`` of the tiles at ``columns`` of the band's top row."""
        if self.total is None:
            self.weights = self.weights.to(blended.device)
            self.total = blended.new_zeros((blended.shape[1], self.tile_h, self.full_width))
            self.norm = blended.new_zeros((self.tile_h, self.full_width))
        for x, tile in zip(columns, blended * self.weights, strict=True):
            self.total[:, :, x : x + self.tile_w] += tile
            self.norm[:, x : x + self.tile_w] += self.weights

    def finish(self, end: int) -> None:
        """Rows ``[top, end)`` are final: write their classes (and probabilities), drop them from the band."""
        height, width = self.mask.shape
        count = min(end, height) - self.top
        if count > 0 and self.total is not None:
            blended = self.total[:, :count, :width] / self.norm[:count, :width]
            self.mask[self.top : self.top + count] = class_map(blended, dim=0).to(torch.int32).cpu().numpy()
            if self.probabilities is not None:
                self.probabilities[:, self.top : self.top + count] = blended.cpu().numpy()
        shift = end - self.top
        for buffer in (self.total, self.norm):
            if buffer is not None:
                buffer[..., : self.tile_h - shift, :] = buffer[..., shift:, :].clone()
                buffer[..., self.tile_h - shift :, :] = 0
        self.top = end


def flip_averaged_probabilities(
    predict: Callable[[np.ndarray], np.ndarray | torch.Tensor],
    tiles: np.ndarray,
    flips: list[tuple[int, ...]],
) -> torch.Tensor:
    """Softmax probabilities ``(B, K, h, w)`` of ``tiles`` ``(B, C, h, w)``, averaged over ``flips``."""
    blended = None
    for axes in flips:
        view = np.flip(tiles, axis=axes) if axes else tiles
        result = torch.softmax(torch.as_tensor(predict(view)).float(), dim=1)
        result = torch.flip(result, dims=axes) if axes else result
        blended = result if blended is None else blended + result
    return blended / len(flips)


def check_tiling(tile_size: int, min_size: int, batch_size: int, overlap: float) -> None:
    """Refuse tiling options that cannot work, naming the key."""
    if tile_size < min_size:
        raise ConfigError(f"tile_size={tile_size} is below the network's minimum input size {min_size}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}")


def segment_tiled(
    predict: Callable[[np.ndarray], np.ndarray | torch.Tensor],
    image: np.ndarray,
    num_classes: int,
    min_size: int,
    tile_size: int = 512,
    overlap: float = 0.25,
    tta: bool = False,
    batch_size: int = 4,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    probabilities: np.ndarray | None = None,
) -> np.ndarray:
    """The class map ``(H, W)`` (uint8, or uint16 past 256 classes) of an image ``(C, H, W)`` of any size.

    An image no larger than ``tile_size`` runs whole (exactly the network's own output); a larger one
    runs as overlapping tiles whose softmax probabilities are blended with Gaussian weights, in rows of
    tiles: a row of output pixels is final once the tiles below no longer reach it, so only one band of
    ``tile_size`` rows of probabilities is ever held, whatever the image's size. ``prepare`` turns each
    tile as sliced from ``image`` into the network's input (e.g. normalisation), so a large image is
    never held normalised either. Images smaller than ``min_size`` are padded and the result cropped
    back. ``probabilities`` (``(K, H, W)``, any float dtype, e.g. a memory-mapped ``.npy``) receives the
    blended probabilities when given. ``predict`` maps tiles ``(B, C, h, w)`` to logits ``(B, K, h, w)``,
    as an array or as a tensor on any device: blending then runs on that device (a GPU's), in torch's
    threads, and only finished rows of classes come back. With ``tta``, each tile's probabilities are averaged over its
    horizontal, vertical and double flips. An image of more than one batch of tiles shows a progress bar
    over its tiles (a large scan can take minutes); smaller ones stay quiet.
    """
    check_tiling(tile_size, min_size, batch_size, overlap)
    prepare = prepare or (lambda tile: tile)
    padded, (height, width) = pad_to_minimum(image, min_size)
    full_h, full_w = padded.shape[-2:]
    tile_h, tile_w = min(tile_size, full_h), min(tile_size, full_w)
    rows, columns = tile_starts(full_h, tile_h, overlap), tile_starts(full_w, tile_w, overlap)
    tiled = len(rows) * len(columns) > 1
    weights = torch.from_numpy(
        gaussian_weights(tile_h, tile_w) if tiled else np.ones((tile_h, tile_w), np.float32)
    )
    mask = np.empty((height, width), np.uint8 if num_classes <= 256 else np.uint16)
    band = _BlendBand(mask, (tile_h, tile_w), full_w, weights, probabilities)
    flips = flip_variants(tta)
    progress = tqdm(
        total=len(rows) * len(columns), desc="tiles", unit="tile", leave=False,
        disable=len(rows) * len(columns) <= batch_size,
    )  # fmt: skip
    with torch.inference_mode():
        for y in rows:
            band.finish(y)  # no tile from this row on reaches above y
            for start in range(0, len(columns), batch_size):
                chunk = columns[start : start + batch_size]
                tiles = np.stack([prepare(padded[:, y : y + tile_h, x : x + tile_w]) for x in chunk])
                band.add(chunk, flip_averaged_probabilities(predict, tiles, flips))
                progress.update(len(chunk))
        band.finish(band.top + tile_h)
    progress.close()
    return mask


def predict_probabilities(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    num_classes: int,
    min_size: int,
    **tiling: Any,
) -> np.ndarray:
    """Softmax probabilities ``(K, H, W)`` float32 of a normalised image ``(C, H, W)``, tiled and blended
    as :func:`segment_tiled` does with the same ``tiling`` options (``tile_size``, ``overlap``, ``tta``,
    ``batch_size``); segment_tiled streams a large image into a class map without holding these."""
    probabilities = np.empty((num_classes, *image.shape[-2:]), np.float32)
    segment_tiled(
        predict,
        image.astype(np.float32, copy=False),
        num_classes,
        min_size,
        probabilities=probabilities,
        **tiling,
    )
    return probabilities
