"""Colour class-index masks and lay out input | ground truth | prediction panels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unet.utils.normalization import channel_tensor

# Distinct, colour-blind-friendly colours (Okabe-Ito, then Tableau); class 0 is black.
PALETTE = torch.tensor(
    [
        [0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178],
        [213, 94, 0], [204, 121, 167], [255, 255, 255], [148, 103, 189], [140, 86, 75], [127, 127, 127],
    ],
    dtype=torch.uint8,
)  # fmt: skip
IGNORE_COLOUR = torch.tensor([255, 0, 255], dtype=torch.uint8)


def colourize(mask: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Class indices ``(H, W)`` to an RGB image ``(3, H, W)`` uint8; void pixels in magenta."""
    index = mask.long().cpu()
    valid = (index >= 0) & (index != (ignore_index if ignore_index is not None else -1))
    rgb = PALETTE[index.clamp(min=0) % len(PALETTE)]
    rgb[~valid] = IGNORE_COLOUR
    return rgb.permute(2, 0, 1).contiguous()


def denormalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A normalised ``(C, H, W)`` image back to displayable RGB uint8 ``(3, H, W)``: of more than 3
    channels the first 3, of 1 or 2 the first as gray.

    ``mean`` and ``std`` are in units of the 0..1 intensity range (the albumentations convention).
    """
    image = image.detach().float().cpu()
    image = image * channel_tensor(std) + channel_tensor(mean)
    image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return image[:3] if image.shape[0] >= 3 else image[:1].expand(3, -1, -1)


def comparison_panel(
    images: torch.Tensor,
    masks: torch.Tensor,
    predictions: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Rows of input | ground truth | prediction for a batch: ``(3, B*H + gaps, 3*W + gaps)`` uint8."""
    from torchvision.utils import make_grid

    tiles = []
    for image, mask, prediction in zip(images, masks, predictions, strict=True):
        tiles += [
            denormalize(image, mean, std),
            colourize(mask, ignore_index),
            colourize(prediction, ignore_index),
        ]
    return make_grid(torch.stack(tiles), nrow=3, padding=2, pad_value=128)
