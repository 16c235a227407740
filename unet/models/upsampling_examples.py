"""The upsampling methods at work on a 4x4 example: the numbers behind docs/upsampling.md's figures.

Each method is the registered class itself (:data:`unet.models.UPSAMPLERS`) with its learned weights
set by hand to the identity (a 1x1 projection of weight 1) or to ones (a transposed convolution's
kernel), so what a figure shows is what the decoder's layer computes, on one channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unet.models.upsamplers import UPSAMPLERS, Upsampler
from unet.models.upsamplers.transposed import contribution_counts, transposed_padding

# A 4x4 feature map; its 2x2 max-pool keeps 5, 9, 7 and 4 (one position per 2x2 window).
FEATURES = torch.tensor(
    [[1.0, 5.0, 0.0, 2.0], [3.0, 2.0, 9.0, 1.0], [0.0, 0.0, 1.0, 1.0], [7.0, 0.0, 1.0, 4.0]]
)
# Pixel shuffle's conv, 1 -> 4 channels: one weight per sub-pixel of the 2x2 cell (row-major).
SUBPIXEL_WEIGHTS = (1.0, 0.75, 0.5, 0.25)


@dataclass(frozen=True)
class TransposedExample:
    """One transposed convolution of the page: stride ``s``, kernel ``k``, padding (None: the one that
    makes the output exactly ``s*h``)."""

    stride: int
    kernel_size: int
    padding: int | None = None

    @property
    def label(self) -> str:
        padding, output_padding = transposed_padding(self.kernel_size, self.stride, self.padding)
        return f"s={self.stride}, k={self.kernel_size}, p={padding}, op={output_padding}"


TRANSPOSED_EXAMPLES = (
    TransposedExample(2, 2),
    TransposedExample(2, 3),
    TransposedExample(2, 4),
    TransposedExample(4, 4),
    TransposedExample(4, 8),
    TransposedExample(4, 6, padding=1),
)


def max_pooled() -> tuple[torch.Tensor, torch.Tensor]:
    """:data:`FEATURES`' 2x2 max-pool ``(2, 2)`` and the flat positions ``(2, 2)`` its maxima came from."""
    pooled, indices = F.max_pool2d(FEATURES[None, None], 2, 2, return_indices=True)
    return pooled[0, 0], indices[0, 0]


def _identity(upsampler: Upsampler) -> Upsampler:
    with torch.no_grad():
        for name, parameter in upsampler.named_parameters():
            parameter.fill_(1.0 if name.endswith("weight") else 0.0)
    return upsampler.eval()


def pooling_style_outputs() -> dict[str, torch.Tensor]:
    """The pooled 2x2 map upsampled back to 4x4 ``(4, 4)`` by each fixed method (identity projections)
    and by pixel shuffle (its conv's weights :data:`SUBPIXEL_WEIGHTS`)."""
    pooled, indices = max_pooled()
    x = pooled[None, None]
    outputs = {}
    for name in ("nearest", "bed_of_nails", "maxunpool", "bilinear"):
        upsampler = _identity(UPSAMPLERS[name](1, 1))
        outputs[name] = upsampler(x, (4, 4), indices[None, None] if upsampler.needs_pool_indices else None)
    shuffle = UPSAMPLERS["pixelshuffle"](1, 1)
    with torch.no_grad():
        shuffle.conv.weight.copy_(torch.tensor(SUBPIXEL_WEIGHTS)[:, None, None, None])
        shuffle.conv.bias.zero_()
    outputs["pixelshuffle"] = shuffle.eval()(x, (4, 4))
    return {name: output[0, 0].detach() for name, output in outputs.items()}


def transposed_outputs() -> dict[str, torch.Tensor]:
    """The pooled 2x2 map through each of :data:`TRANSPOSED_EXAMPLES` with a kernel of ones: ``(2s, 2s)``
    sums of the values whose blocks cover each output pixel."""
    pooled, _ = max_pooled()
    outputs = {}
    for example in TRANSPOSED_EXAMPLES:
        options = {"kernel_size": example.kernel_size, "padding": example.padding}
        upsampler = _identity(UPSAMPLERS["transposed"](1, 1, scale=example.stride, **options))
        size = (2 * example.stride, 2 * example.stride)
        outputs[example.label] = upsampler(pooled[None, None], size)[0, 0].detach()
    return outputs


def overlap_counts(size: int = 4) -> dict[str, torch.Tensor]:
    """How many input pixels of a ``size x size`` map write each output pixel, per example: uniform where
    the kernel is a multiple of the stride (inside the border), uneven otherwise (the checkerboard)."""
    return {
        example.label: contribution_counts(example.kernel_size, example.stride, size, example.padding)
        for example in TRANSPOSED_EXAMPLES
    }
