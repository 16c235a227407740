"""The U-Net: an encoder of conv blocks and 2x2 max-pools, a decoder whose upsampling is a registry name."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from unet.models.blocks import ConvBlock
from unet.models.upsamplers import get_upsampler
from unet.utils.limits import check_num_classes

FUSIONS = ("concat", "add", "none")
# A billion parameters: 4 GB of fp32 weights, 16 GB with gradients and AdamW's two moments. A U-Net
# past this is a typo in base_channels or depth (each level doubles the width), not a plan.
MAX_PARAMETERS = 10**9


def check_sizes(in_channels: int, num_classes: int, base_channels: int = 1, depth: int = 1) -> None:
    """Refuse sizes that are typos before any memory is allocated (10_000_000 classes: gigabytes of
    weights and logits, and a confusion matrix of 10^14 cells), naming the key, the value and the limit."""
    check_num_classes(num_classes)
    sizes = {"in_channels": in_channels, "base_channels": base_channels, "depth": depth}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    levels = min(int(depth), 64)  # past 64 levels the estimate below is astronomical anyway
    # The deepest levels dominate: two 3x3 convs per level at base * 2**level channels.
    estimate = sum(9 * 2 * (base_channels * 2**level) ** 2 for level in range(levels + 1))
    if estimate > MAX_PARAMETERS:
        raise ValueError(
            f"base_channels={base_channels} with depth={depth} makes a U-Net of about {estimate:.1e} parameters "
            f"(its deepest level has {base_channels * 2**levels:,} channels); the limit is {MAX_PARAMETERS:.0e} "
            "(4 GB of weights, 16 GB to train): lower model.net.base_channels or model.net.depth"
        )


@contextmanager
def buffers_kept(module: nn.Module) -> Iterator[None]:
    """Leave ``module``'s buffers (BatchNorm running statistics) as they were on entry.

    Checkpointing runs a block's forward a second time during backward; in training mode that
    second run would update the running statistics (and ``num_batches_tracked``) a second time.
    """
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


class DecoderStage(nn.Module):
    """Upsample to the skip's size and width, fuse with the skip, then a conv block to ``out_channels``.

    The upsampler always produces the skip's channel count (max-unpooling needs it, and so does
    ``add``); ``out_channels`` is the stage's own width, which ``decoder_width`` scales.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        upsample: str,
        upsample_options: dict[str, Any],
        fuse: str,
        **block_options: Any,
    ) -> None:
        super().__init__()
        self.fuse = fuse
        self.upsample = get_upsampler(upsample)(in_channels, skip_channels, **upsample_options)
        block_in = 2 * skip_channels if fuse == "concat" else skip_channels
        self.block = ConvBlock(block_in, out_channels, **block_options)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        x = self.upsample(x, (skip.shape[-2], skip.shape[-1]), indices)
        if self.fuse == "concat":
            x = torch.cat([x, skip], dim=1)
        elif self.fuse == "add":
            x = x + skip
        return self.block(x)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``.

    Works for any ``H, W >= 2**depth``, divisible by ``2**depth`` or not: each decoder stage
    upsamples to its skip connection's exact size, so the output matches the input without cropping.
    Encoder level ``i`` has ``base_channels * 2**i`` channels; the decoder mirrors it.

    Args:
        upsample: name of a registered upsampling method (see ``unet.models.UPSAMPLERS``).
        upsample_options: keyword options for that method's class (e.g. ``{"corner": "top_left"}``).
        fuse: how the upsampled features meet the skip: ``concat`` (U-Net), ``add`` or ``none``.
        norm: ``batch``, ``group``, ``instance`` or ``none``; activation: ``relu``, ``gelu``, ...
        dropout: channel dropout at the end of every conv block.
        decoder_width: multiplier of the decoder stages' widths (1: mirror the encoder). Comparisons
            use it to give every method the same parameter count (see ``unet.models.sizing``).
        checkpoint_encoder: gradient checkpointing of the encoder blocks, in training only: trades
            compute for memory on large images (their activations are recomputed during backward
            instead of kept). Outputs, gradients and BatchNorm statistics are those without it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        upsample: str = "bilinear",
        depth: int = 4,
        base_channels: int = 32,
        upsample_options: dict[str, Any] | None = None,
        fuse: str = "concat",
        norm: str = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
        decoder_width: float = 1.0,
        checkpoint_encoder: bool = False,
    ) -> None:
        super().__init__()
        upsampler_cls = get_upsampler(upsample)
        if fuse not in FUSIONS:
            raise ValueError(f"unknown fuse {fuse!r}; valid: {', '.join(FUSIONS)}")
        check_sizes(in_channels, num_classes, base_channels, depth)
        if decoder_width <= 0:
            raise ValueError(f"decoder_width must be positive, got {decoder_width}")
        self.depth = depth
        self.checkpoint_encoder = checkpoint_encoder
        self.save_indices = upsampler_cls.needs_pool_indices
        block_options = {"norm": norm, "activation": activation, "dropout": dropout}
        widths = [base_channels * 2**level for level in range(depth + 1)]
        # Decoder stage widths; the bottleneck (level ``depth``) belongs to the encoder.
        decoder_widths = [max(1, round(width * decoder_width)) for width in widths[:depth]] + [widths[depth]]

        self.encoder = nn.ModuleList(
            ConvBlock(in_channels if level == 0 else widths[level - 1], widths[level], **block_options)
            for level in range(depth + 1)
        )
        self.decoder = nn.ModuleList(
            DecoderStage(
                decoder_widths[level + 1],
                widths[level],
                decoder_widths[level],
                upsample,
                dict(upsample_options or {}),
                fuse,
                **block_options,
            )
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(decoder_widths[0], num_classes, kernel_size=1)

    @property
    def min_size(self) -> int:
        """Smallest height/width the network accepts: every pooling level needs at least one pixel."""
        return 2**self.depth

    def _encode(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not (self.checkpoint_encoder and self.training and torch.is_grad_enabled()):
            return block(x)
        # The RNG state is restored for the recomputation (the same dropout masks), and the
        # recomputation leaves the BatchNorm running statistics alone (updated once per step).
        return checkpoint(
            block,
            x,
            use_reentrant=False,
            preserve_rng_state=True,
            context_fn=lambda: (nullcontext(), buffers_kept(block)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
            and min(x.shape[-2:]) < self.min_size
        ):
            raise ValueError(
                f"input of size {tuple(x.shape[-2:])} is too small for depth {self.depth}: "
                f"height and width must be >= {self.min_size}"
            )
        skips: list[torch.Tensor] = []
        indices: list[torch.Tensor | None] = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                if self.save_indices:
                    x, level_indices = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
                else:
                    x, level_indices = F.max_pool2d(x, kernel_size=2, stride=2), None
                indices.append(level_indices)
            x = self._encode(block, x)
            if level < self.depth:
                skips.append(x)
        for stage in self.decoder:
            x = stage(x, skips.pop(), indices.pop())
        return self.head(x)
