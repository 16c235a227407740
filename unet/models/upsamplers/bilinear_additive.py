"""Bilinear additive upsampling (Wojna et al., "The Devil is in the Decoder", 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unet.models.upsamplers.base import Upsampler, register_upsampler


@register_upsampler("bilinear_additive")
class BilinearAdditiveUpsampler(Upsampler):
    """Bilinear upsampling, then each output channel is the sum of ``C_in / C_out`` consecutive channels.

    Parameter-free: the channel reduction a learned method would do with weights is a fixed sum.
    Summing first and interpolating second gives the same numbers (both are linear) on fewer pixels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        if in_channels % out_channels != 0:
            raise ValueError(
                "bilinear_additive sums groups of channels, so in_channels must be a multiple of "
                f"out_channels; got in_channels={in_channels}, out_channels={out_channels}"
            )
        self.group_size = in_channels // out_channels

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, _, h, w = x.shape
        summed = x.reshape(b, self.out_channels, self.group_size, h, w).sum(dim=2)
        return F.interpolate(summed, size=size, mode="bilinear", align_corners=False)
