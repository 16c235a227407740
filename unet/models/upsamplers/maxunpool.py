"""SegNet-style max-unpooling with the indices of the matching encoder max-pool."""

from __future__ import annotations

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, register_upsampler


@register_upsampler("maxunpool")
class MaxUnpoolUpsampler(Upsampler):
    """Put each value back where the encoder found the maximum of its ``f x f`` window, zeros elsewhere.

    The indices belong to the skip feature, which has ``out_channels`` channels, so the input is
    first projected to that width by a 1x1 conv (Badrinarayanan et al., SegNet, 2017).

    The indices are those of the encoder's ``f x f`` max-pool (the ``unet`` encoder, ``f`` being
    ``model.net.scale``, and ``vgg16_bn``:
    SegNet exactly). Where the encoder reached the lower resolution otherwise (strided convs, a
    3x3 pool), the U-Net passes the indices of the skip feature's own 2x2 argmax instead
    (:func:`~unet.models.upsamplers.base.argmax_indices`, rounding odd sizes as the encoder did),
    and in the final stages above an encoder's first feature, which have no skip, those of the
    input image's channel mean, average-pooled to the stage's size.
    """

    needs_pool_indices = True

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        if indices is None:
            raise ValueError("maxunpool needs the encoder's max-pool indices; got none")
        # Scatter into a zero map of the skip's size: the same numbers as F.max_unpool2d, written with
        # ops that trace (TorchScript) and export (ONNX ScatterElements) for any input size.
        values = self.project(x)
        b, c = values.shape[0], values.shape[1]
        unpooled = values.new_zeros((b, c, size[0] * size[1]))
        unpooled = unpooled.scatter(2, indices.flatten(2), values.flatten(2))
        return unpooled.view(b, c, size[0], size[1])
