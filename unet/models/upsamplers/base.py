"""The upsampler interface and the registry that maps a config name to its class."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLERS: dict[str, type[Upsampler]] = {}


def register_upsampler(name: str) -> Callable[[type[Upsampler]], type[Upsampler]]:
    """Class decorator: make an upsampler selectable as ``model.upsample=<name>``.

    The registry is the single source of truth: configs, sweeps and reports list methods from it,
    so adding a method means writing one decorated class and nothing else.
    """

    def decorator(cls: type[Upsampler]) -> type[Upsampler]:
        if name in UPSAMPLERS:
            raise ValueError(f"upsampler {name!r} is already registered by {UPSAMPLERS[name].__qualname__}")
        cls.name = name
        UPSAMPLERS[name] = cls
        return cls

    return decorator


def get_upsampler(name: str) -> type[Upsampler]:
    """Look a method up by name; an unknown name lists the valid ones."""
    try:
        return UPSAMPLERS[name]
    except KeyError:
        valid = ", ".join(sorted(UPSAMPLERS))
        raise ValueError(f"unknown upsampling method {name!r}; valid names: {valid}") from None


class Upsampler(nn.Module):
    """Maps decoder features ``(B, C_in, h, w)`` to ``(B, C_out, H, W)`` at the skip's size ``(H, W)``.

    ``(H, W)`` is the exact size of the encoder feature the result is fused with; for odd sizes it is
    ``2h + 1`` (or ``2w + 1``), so every method must produce sizes other than an exact doubling.
    Methods that need the encoder's max-pool indices set ``needs_pool_indices``; the encoder then
    saves them (and only then).
    """

    name: ClassVar[str] = ""
    needs_pool_indices: ClassVar[bool] = False

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


def pad_to_size(x: torch.Tensor, size: tuple[int, int], mode: str = "replicate") -> torch.Tensor:
    """Pad the bottom/right of a ``(B, C, 2h, 2w)`` map to ``(B, C, H, W)`` with ``H - 2h <= 1``.

    A stride-2 method doubles ``h``; when the skip is odd (``H = 2h + 1``) the last row/column
    has no source cell. Replicating the border fills it without inventing content (zeros for
    methods whose output is sparse by design).
    """
    # Always pad (a zero pad is a no-op) so exported graphs keep height and width dynamic instead
    # of specialising on whether the skip size is odd.
    padding = (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2])
    if mode == "constant":
        return F.pad(x, padding)
    return F.pad(x, padding, mode=mode)
