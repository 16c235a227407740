"""Bilinear additive upsampling (Wojna et al., "The Devil is in the Decoder", 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unet.models.upsamplers.base import Upsampler, register_upsampler


def channel_groups(in_channels: int, out_channels: int) -> torch.Tensor:
    """A fixed ``(out, in)`` 0/1 matrix: output ``j`` sums a contiguous run of about ``in / out`` inputs.

    With ``in`` a multiple of ``out`` the runs are equal groups of ``in / out`` channels; otherwise
    their lengths differ by at most one.
    """
    bounds = [round(j * in_channels / out_channels) for j in range(out_channels + 1)]
    groups = torch.zeros(out_channels, in_channels)
    for j in range(out_channels):
        groups[j, bounds[j] : bounds[j + 1]] = 1.0
    return groups


def reduced_channels(in_channels: int, scale: int) -> int:
    """The paper's output width at factor ``f``: ``C_in / f**2`` (so ``f**2`` times the pixels keep the
    tensor's size), rounded down, and at least one channel."""
    return max(1, in_channels // scale**2)


@register_upsampler("bilinear_additive")
class BilinearAdditiveUpsampler(Upsampler):
    """Bilinear upsampling by ``f``, then each output channel is the sum of ``f**2`` consecutive channels.

    Parameter-free: the channel reduction a learned method would do with weights is a fixed sum, by
    ``f**2`` as in the paper (4 at x2, 16 at x4), so the output has ``C_in // f**2`` channels whatever
    ``out_channels`` asks: the decoder stage concatenates that width with the skip. Where ``C_in`` is
    not a multiple of ``f**2`` the ``C_in // f**2`` groups (at least one) are near-equal runs, one
    channel longer where needed (:func:`channel_groups`).
    Summing first and interpolating second gives the same numbers (both are linear) on fewer pixels.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.out_channels = reduced_channels(in_channels, self.scale)
        self.register_buffer(
            "groups", channel_groups(in_channels, self.out_channels)[:, :, None, None], persistent=False
        )

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        summed = F.conv2d(x, self.groups.to(x.dtype))
        return F.interpolate(summed, size=size, mode="bilinear", align_corners=False)
