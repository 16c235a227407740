"""CARAFE: Content-Aware ReAssembly of FEatures (Wang et al., ICCV 2019), in plain PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError

# The paper's compressed width, reached from 256 input channels (its FPN) by a factor of 4.
MAX_COMPRESSED_CHANNELS = 64


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_odd(name: str, value: int) -> None:
    """Odd sizes keep each window centred on its source pixel."""
    if not _is_positive_int(value) or value % 2 != 1:
        raise ConfigError(f"carafe {name} must be an odd integer >= 1, got {value!r}")


@register_upsampler("carafe")
class CarafeUpsampler(Upsampler):
    """Every output pixel is a predicted, softmax-normalised ``k_up x k_up`` average around its source pixel.

    Kernel prediction: a 1x1 conv compresses ``C_in`` to ``compressed_channels``; a ``k_enc x k_enc``
    content encoder makes ``f * f * k_up**2`` channels (``f``: the scale), pixel-shuffled to one ``k_up**2``
    kernel per output pixel and softmax-normalised over it. Reassembly: output pixel ``(f*y + i, f*x + j)`` is the
    kernel-weighted sum of the ``k_up x k_up`` neighbourhood of input pixel ``(y, x)`` (zeros outside
    the map, as in the paper's CUDA op), gathered with ``F.unfold``: no custom kernel, so it traces
    and exports to ONNX. The unfolded tensor holds ``k_up**2`` copies of the input-size features, i.e.
    ``(k_up / f)**2`` times the output's memory (6.25x at ``k_up=5``, ``f=2``).

    Defaults are the paper's (``k_up=5``, ``k_enc=3``; the scale is the U-Net level's pooling factor) except
    ``compressed_channels``: the paper compresses its FPN's 256 channels to 64; here ``None`` keeps
    that factor of 4 (``C_in // 4``, at most 64), because a U-Net's decoder stages are 16 to 512
    channels wide and 64 would expand the narrow ones and dominate a small decoder's parameters.
    The content encoder starts near zero (std 0.001, as mmcv's CARAFEPack), so at initialisation
    every kernel is uniform: a ``k_up x k_up`` box filter of the nearest-neighbour upsampling.
    A 1x1 conv first brings the features to ``C_out`` (<= ``C_in`` in a U-Net) channels, so the
    reassembly moves fewer channels; away from the border the two orders give the same result.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k_up: int = 5,
        k_enc: int = 3,
        compressed_channels: int | None = None,
        scale: int = 2,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        _check_odd("k_up", k_up)
        _check_odd("k_enc", k_enc)
        if compressed_channels is None:
            compressed_channels = max(1, min(MAX_COMPRESSED_CHANNELS, in_channels // 4))
        if not _is_positive_int(compressed_channels):
            raise ConfigError(
                f"carafe compressed_channels must be an integer >= 1, got {compressed_channels!r}"
            )
        self.k_up = k_up
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.compressor = nn.Conv2d(in_channels, compressed_channels, kernel_size=1)
        self.encoder = nn.Conv2d(
            compressed_channels, scale**2 * k_up**2, kernel_size=k_enc, padding=k_enc // 2
        )
        nn.init.normal_(self.encoder.weight, std=0.001)
        nn.init.zeros_(self.encoder.bias)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """Reassembly kernels ``(B, k_up**2, f*h, f*w)`` of an input ``(B, C_in, h, w)``; each sums to one."""
        kernels = F.pixel_shuffle(self.encoder(self.compressor(x)), self.scale)
        return kernels.softmax(dim=1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, _, h, w = x.shape
        k2, f = self.k_up**2, self.scale
        # (B, k2, fh, fw) -> (B, h*w, k2, f*f): the f*f sub-pixel kernels of each source pixel.
        kernels = self.kernels(x).reshape(b, k2, h, f, w, f).permute(0, 2, 4, 1, 3, 5)
        kernels = kernels.reshape(b, h * w, k2, f * f)
        # (B, C_out, h, w) -> (B, C_out * k2, h*w) -> (B, h*w, C_out, k2): each pixel's neighbourhood.
        features = self.project(x)
        neighbourhoods = F.unfold(features, self.k_up, padding=self.k_up // 2)
        neighbourhoods = neighbourhoods.reshape(b, self.out_channels, k2, h * w).permute(0, 3, 1, 2)
        out = torch.matmul(neighbourhoods, kernels)  # (B, h*w, C_out, f*f)
        out = out.reshape(b, h, w, self.out_channels, f, f).permute(0, 3, 1, 4, 2, 5)
        return pad_to_size(out.reshape(b, self.out_channels, f * h, f * w), size)
