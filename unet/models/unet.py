"""The U-Net: a registered encoder (plain conv blocks or a pretrained backbone), a decoder whose upsampling
is a registry name."""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from unet.models.blocks import ConvBlock
from unet.models.encoders import Encoder, get_encoder
from unet.models.encoders.base import level_factors
from unet.models.upsamplers import get_upsampler
from unet.models.upsamplers.base import argmax_indices
from unet.utils.errors import ConfigError
from unet.utils.limits import check_num_classes

FUSIONS = ("concat", "add", "none")
# A billion parameters: 4 GB of fp32 weights, 16 GB with gradients and AdamW's two moments. A U-Net
# past this is a typo in base_channels or depth (each level doubles the width), not a plan.
MAX_PARAMETERS = 10**9


def check_backbone_scale(encoder: Encoder, name: str, scale: int | Sequence[int]) -> None:
    """Refuse a ``scale`` other than 2 that a backbone's own strides do not have: a pretrained encoder
    keeps its stages, and a x4 step between two of them would skip the one in between."""
    if scale == 2 or level_factors(scale, len(encoder.factors)) == encoder.factors:
        return
    raise ConfigError(
        f"model.encoder={name} keeps its own strides {encoder.reductions} (factors {encoder.factors} between "
        f"its stages); model.net.scale={scale!r} would skip a stage: use model.net.scale=2 with this "
        "encoder, or model.encoder=unet"
    )


def check_sizes(in_channels: int, num_classes: int, base_channels: int = 1, depth: int = 1) -> None:
    """Refuse sizes that are typos before any memory is allocated (10_000_000 classes: gigabytes of
    weights and logits, and a confusion matrix of 10^14 cells), naming the key, the value and the limit."""
    check_num_classes(num_classes)
    sizes = {"in_channels": in_channels, "base_channels": base_channels, "depth": depth}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    levels = min(int(depth), 64)  # past 64 levels the estimate below is astronomical anyway
    # The deepest levels dominate: two 3x3 convs per level at base * 2**level channels.
    estimate = sum(9 * 2 * (base_channels * 2**level) ** 2 for level in range(levels + 1))
    if estimate > MAX_PARAMETERS:
        raise ConfigError(
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
    """Upsample by ``scale`` to the skip's size and width, fuse with the skip, then a conv block to ``out_channels``.

    The upsampler is asked for the skip's channel count (max-unpooling needs it, and so does ``add``);
    one whose width follows from its input (``bilinear_additive``) is concatenated at its own width,
    and refused with ``add``. ``out_channels`` is the stage's own width, which ``decoder_width``
    scales. A stage without skip (``skip_channels=None``: above an encoder's first feature) upsamples
    to its own width.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int | None,
        out_channels: int,
        upsample: str,
        upsample_options: dict[str, Any],
        fuse: str,
        ceil_mode: bool = False,
        scale: int = 2,
        **block_options: Any,
    ) -> None:
        super().__init__()
        self.fuse = fuse if skip_channels is not None else "none"
        self.ceil_mode = ceil_mode
        up_channels = out_channels if skip_channels is None else skip_channels
        if "scale" in upsample_options:
            raise ConfigError("the upsampling factor is model.net.scale, not model.upsample_options.scale")
        self.upsample = get_upsampler(upsample)(in_channels, up_channels, scale=scale, **upsample_options)
        produced = self.upsample.out_channels
        if self.fuse == "add" and produced != skip_channels:
            raise ConfigError(
                f"model.upsample={upsample} at x{scale} gives {produced} channels from {in_channels}, the skip "
                f"has {skip_channels}: model.net.fuse=add needs them equal; use model.net.fuse=concat"
            )
        block_in = produced + skip_channels if self.fuse == "concat" else produced
        self.block = ConvBlock(block_in, out_channels, **block_options)

    def forward(
        self,
        x: torch.Tensor,
        reference: torch.Tensor,
        skip: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``(B, C_in, h, w)`` -> ``(B, out_channels, H, W)``, the size of ``reference`` ``(B, *, H, W)``:
        the skip, or for a stage without skip the image's channel mean pooled to the stage's size.

        Max-unpooling without the encoder's pool ``indices`` takes those of ``reference``'s ``f x f`` argmax.
        """
        if self.upsample.needs_pool_indices and indices is None:
            indices = argmax_indices(
                reference, self.upsample.out_channels, self.ceil_mode, self.upsample.scale
            )
        x = self.upsample(x, (reference.shape[-2], reference.shape[-1]), indices)
        if self.fuse == "concat":
            x = torch.cat([x, skip], dim=1)
        elif self.fuse == "add":
            x = x + skip
        return self.block(x)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``.

    Works for any ``H, W >= min_size``, divisible or not: each decoder stage upsamples to its skip
    connection's exact size, so the output matches the input without cropping. The encoder is a
    registry name (``unet.models.ENCODERS``): ``unet``, whose level ``i`` has ``base_channels * 2**i``
    channels (the decoder mirrors it), or a torchvision backbone (``resnet34``, ``convnext_tiny``, ...)
    whose decoder stage at each skip is the skip's width capped at 256 (but at least the next
    shallower skip's; see ``unet.models.encoders.torchvision``). A backbone whose first feature is
    below full resolution (stride 2 or 4) gets final stages without skip, each halving the width
    (at least 16) and upsampling x2, up to the input's exact size.

    Each level pools and upsamples by its factor: ``scale`` for the ``unet`` encoder (2; 4; or one
    per level, shallowest first, e.g. ``[4, 2, 2]``), a backbone's own strides otherwise.

    Max-unpooling uses the encoder's ``f x f`` max-pool indices where it has them (``unet``, ``vgg16_bn``),
    elsewhere the indices of the skip's own ``f x f`` argmax, and in the final stages without skip those
    of the input's channel mean (see ``unet.models.upsamplers.maxunpool``).

    Args:
        upsample: name of a registered upsampling method (see ``unet.models.UPSAMPLERS``).
        depth, base_channels: levels and first width of the ``unet`` encoder; a backbone has its own
            (``depth`` then reads the backbone's number of stride-2 levels).
        scale: the pooling (and upsampling) factor of every level, or a list of one per level,
            shallowest first. A backbone keeps its own strides: a scale they do not have is refused.
        upsample_options: keyword options for that method's class (e.g. ``{"corner": "top_left"}``).
        fuse: how the upsampled features meet the skip: ``concat`` (U-Net), ``add`` or ``none``.
        norm: ``batch``, ``group``, ``instance`` or ``none``; activation: ``relu``, ``gelu``, ...
            (the decoder's, and the ``unet`` encoder's; a backbone keeps its own).
        dropout: channel dropout at the end of every conv block.
        decoder_width: multiplier of the decoder stages' widths (1: mirror the encoder). Comparisons
            use it to give every method the same parameter count (see ``unet.models.sizing``).
        checkpoint_encoder: gradient checkpointing of the encoder stages, in training only: trades
            compute for memory on large images (their activations are recomputed during backward
            instead of kept). Outputs, gradients and BatchNorm statistics are those without it.
        encoder: name of a registered encoder (``unet.models.ENCODERS``) or of an encoder family
            (``timm-<name>``: any timm model with ``features_only``).
        encoder_weights: None (random initialisation), ``"imagenet"`` (torchvision's weights,
            downloaded to its cache) or the path of a local state dict of the backbone's classifier.
            ``in_channels`` other than 3 adapt the first convolution's kernels; the normalisation
            the weights expect is ``self.encoder.mean`` / ``.std`` (None for ``unet``).
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
        encoder: str = "unet",
        encoder_weights: str | os.PathLike | None = None,
        scale: int | Sequence[int] = 2,
    ) -> None:
        super().__init__()
        upsampler_cls = get_upsampler(upsample)
        build_encoder = get_encoder(encoder)
        if fuse not in FUSIONS:
            raise ConfigError(f"unknown fuse {fuse!r}; valid: {', '.join(FUSIONS)}")
        check_sizes(in_channels, num_classes, base_channels, depth)
        if decoder_width <= 0:
            raise ConfigError(f"decoder_width must be positive, got {decoder_width}")
        self.checkpoint_encoder = checkpoint_encoder
        self.save_indices = upsampler_cls.needs_pool_indices
        block_options = {"norm": norm, "activation": activation, "dropout": dropout}
        # Each encoder takes the options it has (the unet encoder: all; a backbone: none).
        accepted = inspect.signature(build_encoder).parameters
        encoder_options = {"depth": depth, "base_channels": base_channels, "scale": scale, **block_options}
        self.encoder = build_encoder(
            in_channels,
            weights=encoder_weights,
            **{name: value for name, value in encoder_options.items() if name in accepted},
        )
        if "scale" not in accepted:
            check_backbone_scale(self.encoder, encoder, scale)
        channels = self.encoder.channels
        self.depth = len(channels) - 1

        def scaled(width: int) -> int:
            return max(1, round(width * decoder_width))

        # Decoder stage widths, then the final stages' (without skip) up to stride 1.
        widths = [scaled(width) for width in self.encoder.decoder_channels]
        final_widths, width = [], self.encoder.decoder_channels[0]
        for _ in range(self.encoder.reductions[0].bit_length() - 1):
            width = max(16, width // 2)
            final_widths.append(scaled(width))
        stage_options = {"upsample": upsample, "upsample_options": dict(upsample_options or {}), "fuse": fuse}
        stage_options |= {"ceil_mode": self.encoder.ceil_mode, **block_options}
        factors = self.encoder.factors
        stages = [
            DecoderStage(
                widths[level + 1] if level + 1 < self.depth else channels[-1],
                channels[level],
                widths[level],
                scale=factors[level],
                **stage_options,
            )
            for level in reversed(range(self.depth))
        ]
        in_width = widths[0]
        for width in final_widths:
            stages.append(DecoderStage(in_width, None, width, **stage_options))
            in_width = width
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(in_width, num_classes, kernel_size=1)

    @property
    def output_factor(self) -> int:
        """The factor of the last upsampling: the period of the pattern its stride leaves in the logits
        (what the checkerboard score measures)."""
        return self.decoder[-1].upsample.scale

    @property
    def min_size(self) -> int:
        """Smallest height/width the network accepts: the deepest feature needs at least one pixel."""
        return self.encoder.min_size

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

    def _references(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Size references of the final stages without skip, deepest first: the image's channel mean
        ``(B, 1, H, W)`` average-pooled to each stage's stride, rounding as the encoder does."""
        count = len(self.decoder) - self.depth
        if count == 0:
            return []
        references = [x.mean(dim=1, keepdim=True)]
        for _ in range(count - 1):
            references.append(F.avg_pool2d(references[-1], 2, ceil_mode=self.encoder.ceil_mode))
        return references[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
            and min(x.shape[-2:]) < self.min_size
        ):
            raise ConfigError(
                f"input of size {tuple(x.shape[-2:])} is too small for this U-Net of {self.depth} levels: "
                f"height and width must be >= {self.min_size}"
            )
        features, indices = self.encoder(x, self.save_indices, self._encode)
        y = features.pop()
        for stage in self.decoder[: self.depth]:
            skip = features.pop()
            y = stage(y, skip, skip, indices.pop())
        for stage, reference in zip(self.decoder[self.depth :], self._references(x), strict=True):
            y = stage(y, reference)
        return self.head(y)
