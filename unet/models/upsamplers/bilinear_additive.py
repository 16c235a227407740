"""Bilinear additive upsampling (Wojna et al., "The Devil is in the Decoder", 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unet.models.upsamplers.base import Upsampler, register_upsampler
from unet.utils.errors import ConfigError


def channel_groups(in_channels: int, out_channels: int) -> torch.Tensor:
    """A fixed ``(out, in)`` 0/1 matrix: output ``j`` sums a contiguous run of about ``in / out`` inputs.

    With ``in`` a multiple of ``out`` the runs are the paper's equal groups of ``in / out`` channels;
    otherwise their lengths differ by at most one, so any decoder width works.
    """
    bounds = [round(j * in_channels / out_channels) for j in range(out_channels + 1)]
    groups = torch.zeros(out_channels, in_channels)
    for j in range(out_channels):
        groups[j, bounds[j] : bounds[j + 1]] = 1.0
    return groups


@register_upsampler("bilinear_additive")
class BilinearAdditiveUpsampler(Upsampler):
    """Bilinear upsampling, then each output channel is the sum of ``C_in / C_out`` consecutive channels.

    Parameter-free: the channel reduction a learned method would do with weights is a fixed sum.
    The paper sums groups of ``f**2`` channels at factor ``f`` (``f**2`` times the pixels, ``f**2``
    times fewer channels); here the skip fixes ``C_out``, so the groups are ``C_in / C_out`` wide
    whatever the factor, which only enters the interpolation.
    Summing first and interpolating second gives the same numbers (both are linear) on fewer pixels.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        if in_channels < out_channels:
            raise ConfigError(
                "bilinear_additive sums groups of channels, so it needs in_channels >= out_channels; "
                f"got in_channels={in_channels}, out_channels={out_channels}"
            )
        self.register_buffer(
            "groups", channel_groups(in_channels, out_channels)[:, :, None, None], persistent=False
        )

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        summed = F.conv2d(x, self.groups.to(x.dtype))
        return F.interpolate(summed, size=size, mode="bilinear", align_corners=False)
