"""Sub-pixel convolution (Shi et al., 2016) with ICNR initialisation (Aitken et al., 2017)."""

from __future__ import annotations

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError


@register_upsampler("pixelshuffle")
class PixelShuffleUpsampler(Upsampler):
    """A conv makes ``4 * C_out`` channels that :class:`torch.nn.PixelShuffle` folds into 2x2 cells.

    ``kernel_size=1`` (the default, as in fastai's ``PixelShuffle_ICNR``) learns as many weights as
    ``transposed``; ``kernel_size=3`` follows Shi et al. and lets each sub-pixel see a neighbourhood.

    ICNR initialises the four sub-pixel kernels of each output channel identically, so at
    initialisation the result is constant within each 2x2 cell (a nearest-neighbour upsampling)
    and free of checkerboard artefacts; training then lets the sub-pixels diverge.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__(in_channels, out_channels)
        if kernel_size % 2 != 1:
            raise ConfigError(f"pixelshuffle kernel_size must be odd to keep the size, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels * 4, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ICNR: draw a ``(C_out, C_in, k, k)`` kernel and give it to all four sub-pixels.

        PixelShuffle reads output channel ``c`` at sub-pixel ``(i, j)`` from conv channel
        ``4c + 2i + j``, so repeating each kernel four times consecutively ties a cell together.
        """
        weight = self.conv.weight
        base = torch.empty(weight.shape[0] // 4, *weight.shape[1:])
        nn.init.kaiming_uniform_(base, a=5**0.5)
        bound = 1 / weight[0].numel() ** 0.5
        bias = torch.empty(weight.shape[0] // 4).uniform_(-bound, bound)
        with torch.no_grad():
            weight.copy_(base.repeat_interleave(4, dim=0))
            self.conv.bias.copy_(bias.repeat_interleave(4))

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pad_to_size(self.shuffle(self.conv(x)), size)
