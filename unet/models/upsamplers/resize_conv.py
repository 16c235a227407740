"""Resize-convolution (Odena et al., 2016, "Deconvolution and Checkerboard Artifacts", Distill)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError

RESIZE_MODES = ("nearest", "bilinear")


@register_upsampler("resize_conv")
class ResizeConvUpsampler(Upsampler):
    """A fixed ``f``x resize (``mode``: nearest, the paper's choice, or bilinear), then a learned 3x3 conv.

    The standard checkerboard-free alternative to a transposed convolution: every output pixel is
    computed by the same kernel from evenly spaced inputs, so no pattern of uneven overlap can appear.
    The resize is an exact multiple (low-resolution pixel ``y`` covers skip rows ``f*y`` to ``f*y + f - 1``,
    as the encoder's max-pool does); a skip that is not a multiple of ``f`` gets its last rows/columns
    replicated before the conv,
    so the conv sees a map of the skip's exact size. Unlike ``nearest``'s 1x1 conv, the 3x3 conv does
    not commute with the resize and runs at the high resolution: ``9 * C_in * C_out`` weights.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "nearest", scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        if mode not in RESIZE_MODES:
            raise ConfigError(f"resize_conv mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        options = {"align_corners": False} if self.mode == "bilinear" else {}
        resized = F.interpolate(
            x, scale_factor=float(self.scale), mode=self.mode, **options
        )  # (B, C_in, fh, fw)
        return self.conv(pad_to_size(resized, size))  # (B, C_out, H, W)
