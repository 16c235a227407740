"""Learned stride-2 transposed convolution (the original U-Net's "up-convolution", 2x2 by default)."""

from __future__ import annotations

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError


@register_upsampler("transposed")
class TransposedConvUpsampler(Upsampler):
    """Each input pixel writes a learned ``k x k`` block at stride 2; an odd skip gets its last row/column replicated.

    ``kernel_size=2`` (the default, the original U-Net) tiles the output without overlap. 3 and 4 are
    the configurations Odena et al. (2016) show produce checkerboard artefacts: with 3 the blocks
    overlap unevenly (output pixels receive 1, 2 or 4 contributions), with 4 evenly but the learned
    kernel still has to balance its four phases. Padding and output padding are chosen so the result
    is exactly ``(2h, 2w)`` for every ``k >= 2`` and every ``h, w`` (odd or even), as with ``k = 2``:
    ``2(h - 1) - 2p + k + op = 2h``, i.e. ``p = (k - 1) // 2`` and ``op = 2p - k + 2``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2) -> None:
        super().__init__(in_channels, out_channels)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 2:
            raise ConfigError(f"transposed kernel_size must be an integer >= 2, got {kernel_size!r}")
        padding = (kernel_size - 1) // 2
        self.kernel_size = kernel_size
        self.deconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=2,
            padding=padding,
            output_padding=2 * padding - kernel_size + 2,
        )

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pad_to_size(self.deconv(x), size)
