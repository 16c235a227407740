"""DySample: content-aware upsampling by learned point sampling (Liu et al., ICCV 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError


@register_upsampler("dysample")
class DySampleUpsampler(Upsampler):
    """Predict a small offset for every output pixel and bilinearly sample the input there.

    The "LP" variant of the paper: a 1x1 conv on the low-resolution input predicts
    ``2 * groups * f**2`` offsets per pixel (``f``: the scale), pixel-shuffled to one ``(dx, dy)`` per output pixel and
    channel group, scaled by 0.25 (or a learned sigmoid "dynamic scope") so that sampling points
    cannot cross. Offsets start near zero, so at initialisation it is bilinear interpolation.
    Sampling positions are computed for the exact target size, so odd skips need no padding of
    features. A 1x1 conv first brings the features to ``C_out`` channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int = 4,
        dynamic_scope: bool = False,
        scale: int = 2,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        if out_channels % groups != 0:
            raise ConfigError(f"dysample groups ({groups}) must divide out_channels ({out_channels})")
        self.groups = groups
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        offsets = 2 * groups * scale**2
        self.offset = nn.Conv2d(in_channels, offsets, kernel_size=1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        self.scope = nn.Conv2d(in_channels, offsets, kernel_size=1) if dynamic_scope else None
        if self.scope is not None:
            nn.init.zeros_(self.scope.weight)
            nn.init.zeros_(self.scope.bias)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, _, h, w = x.shape
        out_h, out_w = size
        if self.scope is None:
            offset = self.offset(x) * 0.25
        else:
            offset = self.offset(x) * self.scope(x).sigmoid() * 0.5
        # (B, 2*G*f*f, h, w) -> (B, 2*G, fh, fw) -> (B, 2*G, H, W): one offset per output pixel and group,
        # in units of input pixels; a skip's extra last rows/columns reuse their neighbour's offsets.
        offset = pad_to_size(F.pixel_shuffle(offset, self.scale), size)
        offset = offset.reshape(b * self.groups, 2, out_h, out_w).permute(0, 2, 3, 1)

        # Where each output pixel centre falls in the input (align_corners=False convention), in
        # input pixel units, then normalised to grid_sample's [-1, 1] with x first. Sizes are only
        # combined with tensors (no Python float of a size), so traced graphs stay size-generic.
        ys = (torch.arange(out_h, device=x.device, dtype=x.dtype) + 0.5) * (h / out_h)
        xs = (torch.arange(out_w, device=x.device, dtype=x.dtype) + 0.5) * (w / out_w)
        grid_x = (xs[None, None, :] + offset[..., 0]) * (2.0 / w) - 1.0
        grid_y = (ys[None, :, None] + offset[..., 1]) * (2.0 / h) - 1.0
        grid = torch.stack([grid_x, grid_y], dim=-1)  # (B*G, H, W, 2)

        features = self.project(x).reshape(b * self.groups, self.out_channels // self.groups, h, w)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return sampled.reshape(b, self.out_channels, out_h, out_w)
