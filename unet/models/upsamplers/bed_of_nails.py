"""Bed-of-nails unpooling: each value at a fixed corner of its f x f cell, zeros elsewhere."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError

# Each corner as (last row?, last column?) of the f x f cell.
CORNERS = {"top_left": (0, 0), "top_right": (0, 1), "bottom_left": (1, 0), "bottom_right": (1, 1)}


@register_upsampler("bed_of_nails")
class BedOfNailsUpsampler(Upsampler):
    """Like max-unpooling with every index fixed to one ``corner``: a baseline without pooling memory."""

    def __init__(self, in_channels: int, out_channels: int, corner: str = "top_left", scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        if corner not in CORNERS:
            raise ConfigError(f"bed_of_nails corner must be one of {sorted(CORNERS)}, got {corner!r}")
        self.corner = corner
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        # (B, C, h, w) -> (B, C, h, f, w, f) with the value in one of the f*f slots -> (B, C, fh, fw).
        # Built by padding rather than strided assignment so it traces and exports as plain ops.
        x = self.project(x)
        b, c, h, w = x.shape
        f = self.scale
        row, col = (f - 1) * CORNERS[self.corner][0], (f - 1) * CORNERS[self.corner][1]
        cells = F.pad(x.reshape(b, c, h, 1, w, 1), (col, f - 1 - col, 0, 0, row, f - 1 - row))
        return pad_to_size(cells.reshape(b, c, f * h, f * w), size, mode="constant")
