"""The plain U-Net encoder: conv blocks at doubling widths, f x f max-pools between them."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Sequence

from torch import nn

from unet.models.blocks import ConvBlock
from unet.models.encoders.base import Encoder, level_factors, register_encoder
from unet.utils.errors import ConfigError


@register_encoder("unet")
class UNetEncoder(Encoder, nn.ModuleList):
    """``depth + 1`` conv blocks; block ``i`` has ``base_channels * 2**i`` channels at the stride of the
    product of the first ``i`` factors of ``scale`` (``2**i`` by default; see :func:`level_factors`).

    Every transition is an ``f x f`` max-pool, so max-unpooling gets real indices at every level. The
    blocks are the list's items (``encoder.0``, ``encoder.1``, ...): the parameter names of U-Nets
    saved before encoders were pluggable. Trained from scratch: ``weights`` must be None.
    """

    def __init__(
        self,
        in_channels: int,
        weights: str | None = None,
        depth: int = 4,
        base_channels: int = 32,
        norm: str = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
        scale: int | Sequence[int] = 2,
    ) -> None:
        if weights is not None:
            raise ConfigError(
                f"the unet encoder has no pretrained weights (got encoder_weights={weights!r}); "
                "set model.encoder_weights=null or choose a pretrained model.encoder"
            )
        factors = level_factors(scale, depth)
        widths = [base_channels * 2**level for level in range(depth + 1)]
        super().__init__(
            ConvBlock(
                in_channels if level == 0 else widths[level - 1], widths[level], norm, activation, dropout
            )
            for level in range(depth + 1)
        )
        self.channels = tuple(widths)
        self.reductions = tuple(itertools.accumulate(factors, operator.mul, initial=1))
        self.pools = (True,) * depth
        self.decoder_channels = tuple(widths[:depth])

    def stage_modules(self) -> Iterable[nn.Module]:
        return iter(self)
