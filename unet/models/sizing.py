"""Size U-Nets to a parameter budget, so methods are compared at equal capacity."""

from __future__ import annotations

from typing import Any

from torch import nn

from unet.models.unet import UNet
from unet.utils.errors import ConfigError


def count_parameters(model: nn.Module) -> int:
    """All parameters of ``model``, trainable or not."""
    return sum(parameter.numel() for parameter in model.parameters())


def parameter_count(**unet_options: Any) -> int:
    """Parameters of ``UNet(**unet_options)``."""
    return count_parameters(UNet(**unet_options))


def decoder_width_for(target_parameters: int, tolerance: float = 0.02, **unet_options: Any) -> float:
    """The ``decoder_width`` at which ``UNet(**unet_options)`` has ``target_parameters`` (within ``tolerance``).

    The count grows with the width, so a bisection on the multiplier finds it; widths are whole
    channels, so the match is as close as rounding allows. Raises if no width in [1/16, 16] fits.
    """
    low, high = 1 / 16, 16.0
    best_width, best_error = 1.0, float("inf")
    for _ in range(40):
        width = (low * high) ** 0.5
        count = parameter_count(**unet_options, decoder_width=width)
        error = abs(count - target_parameters) / target_parameters
        if error < best_error:
            best_width, best_error = width, error
        if error <= tolerance / 4:
            break
        low, high = (width, high) if count < target_parameters else (low, width)
    if best_error > tolerance:
        raise ConfigError(
            f"no decoder width gives {unet_options.get('upsample')} {target_parameters:,} parameters within "
            f"{tolerance:.0%} (closest: {best_error:.1%} off at decoder_width={best_width:.3f})"
        )
    return round(best_width, 4)
