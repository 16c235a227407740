"""Learned 2x2 stride-2 transposed convolution (the original U-Net's "up-convolution")."""

from __future__ import annotations

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler


@register_upsampler("transposed")
class TransposedConvUpsampler(Upsampler):
    """Each input pixel writes a learned 2x2 block; an odd skip gets its last row/column replicated."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pad_to_size(self.deconv(x), size)
