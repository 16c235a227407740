"""Convolution blocks shared by the encoder and decoder, with pluggable norm and activation."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from unet.utils.errors import ConfigError

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "group": lambda channels: nn.GroupNorm(math.gcd(channels, 8), channels),
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True),
    "none": lambda channels: nn.Identity(),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}


def _choose(table: dict, name: str, what: str):
    if name not in table:
        raise ConfigError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")
    return table[name]


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> norm -> activation`` layers (then optional dropout): ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    The convs carry no bias when a norm follows, since the norm's shift makes it redundant.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "batch",
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        make_norm = _choose(NORMS, norm, "norm")
        make_activation = _choose(ACTIVATIONS, activation, "activation")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers += [
                nn.Conv2d(channels_in, out_channels, kernel_size=3, padding=1, bias=norm == "none"),
                make_norm(out_channels),
                make_activation(),
            ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)
