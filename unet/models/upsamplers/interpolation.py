"""Fixed interpolation (nearest, bilinear) followed by a 1x1 convolution to the decoder width."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unet.models.upsamplers.base import Upsampler, register_upsampler


class _InterpolateThenProject(Upsampler):
    """``conv1x1(interpolate(x))``, computed as ``interpolate(conv1x1(x))``.

    Both orders give the same numbers (interpolation mixes pixels with weights that sum to one and
    the 1x1 conv mixes channels, so they commute, bias included); projecting first runs the conv
    on ``f**2`` times fewer pixels. The factor ``f`` is the skip's size over the input's.
    """

    mode: ClassVar[str]

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return F.interpolate(self.project(x), size=size, **self.interpolate_kwargs())

    def interpolate_kwargs(self) -> dict:
        return {"mode": self.mode}


@register_upsampler("nearest")
class NearestUpsampler(_InterpolateThenProject):
    """Nearest-neighbour copy: blocky but artefact-free and parameter-cheap."""

    mode = "nearest"


@register_upsampler("bilinear")
class BilinearUpsampler(_InterpolateThenProject):
    """Bilinear interpolation (``align_corners=False``), the common U-Net default."""

    mode = "bilinear"

    def interpolate_kwargs(self) -> dict:
        return {"mode": self.mode, "align_corners": False}
