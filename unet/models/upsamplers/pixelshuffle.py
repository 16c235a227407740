"""Sub-pixel convolution (Shi et al., 2016) with ICNR initialisation (Aitken et al., 2017)."""

from __future__ import annotations

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError


@register_upsampler("pixelshuffle")
class PixelShuffleUpsampler(Upsampler):
    """A conv makes ``f**2 * C_out`` channels that :class:`torch.nn.PixelShuffle` folds into ``f x f`` cells.

    ``kernel_size=1`` (the default, as in fastai's ``PixelShuffle_ICNR``) learns as many weights as
    ``transposed``; ``kernel_size=3`` follows Shi et al. and lets each sub-pixel see a neighbourhood.

    ICNR initialises the ``f**2`` sub-pixel kernels of each output channel identically, so at
    initialisation the result is constant within each ``f x f`` cell (a nearest-neighbour upsampling)
    and free of checkerboard artefacts; training then lets the sub-pixels diverge.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        if kernel_size % 2 != 1:
            raise ConfigError(f"pixelshuffle kernel_size must be odd to keep the size, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels * scale**2, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ICNR: draw a ``(C_out, C_in, k, k)`` kernel and give it to all ``f**2`` sub-pixels.

        PixelShuffle reads output channel ``c`` at sub-pixel ``(i, j)`` from conv channel
        ``f**2 * c + f * i + j``, so repeating each kernel ``f**2`` times consecutively ties a cell together.
        """
        weight, cell = self.conv.weight, self.scale**2
        base = torch.empty(weight.shape[0] // cell, *weight.shape[1:])
        nn.init.kaiming_uniform_(base, a=5**0.5)
        bound = 1 / weight[0].numel() ** 0.5
        bias = torch.empty(weight.shape[0] // cell).uniform_(-bound, bound)
        with torch.no_grad():
            weight.copy_(base.repeat_interleave(cell, dim=0))
            self.conv.bias.copy_(bias.repeat_interleave(cell))

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pad_to_size(self.shuffle(self.conv(x)), size)
