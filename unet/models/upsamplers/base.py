"""The upsampler interface and the registry that maps a config name to its class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unet.utils.errors import ConfigError

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
        raise ConfigError(f"unknown upsampling method {name!r}; valid names: {valid}") from None


def check_scale(scale: object) -> int:
    """An upsampling factor: an integer >= 2 (a refusal names the value)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ConfigError(f"an upsampling scale must be an integer >= 2, got {scale!r}")
    return scale


class Upsampler(nn.Module):
    """Maps decoder features ``(B, C_in, h, w)`` to ``(B, C_out, H, W)`` at the skip's size ``(H, W)``,
    by the integer factor ``scale`` (the level's pooling factor, ``model.net.scale``).

    ``(H, W)`` is the exact size of the encoder feature the result is fused with: an ``f x f`` pool
    rounded down, so ``H`` is ``f * h`` up to ``f * h + f - 1`` (a padded stride-2 conv rounds up:
    ``2h - 1``), and every method must produce sizes other than an exact multiple.
    Methods that need the encoder's max-pool indices set ``needs_pool_indices``; the encoder then
    saves them (and only then). ``C_out`` is ``out_channels`` (the skip's width) unless the method's
    width follows from its input (``bilinear_additive``: ``C_in / f**2``); ``self.out_channels`` is the
    width produced, which the decoder stage fuses.
    """

    name: ClassVar[str] = ""
    needs_pool_indices: ClassVar[bool] = False

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = check_scale(scale)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def artefact_cause(cls, options: Mapping[str, Any], scale: int) -> str | None:
        """What the method with these ``options`` at factor ``scale`` is known to paint into its output
        (a checkerboard, say) and why, for reports to name; ``None``: nothing known."""
        return None


def pad_to_size(x: torch.Tensor, size: tuple[int, int], mode: str = "replicate") -> torch.Tensor:
    """Fit the bottom/right of a ``(B, C, f*h, f*w)`` map to ``(B, C, H, W)`` with ``|H - f*h| < f``.

    A stride-``f`` method multiplies ``h`` by ``f``. When the skip is not a multiple of ``f``, the
    encoder rounded its size down (``f x f`` pools: ``H = f*h + r``, the last ``r`` rows/columns have
    no source cell) or up (padded stride-2 convs: ``H = 2h - 1``, the last row/column is the
    padding's). Replicating the border fills the first case without inventing content (zeros for
    methods whose output is sparse by design); cropping handles the second.
    """
    # Always crop and pad (no-ops when the size already fits) so exported graphs keep height and
    # width dynamic instead of specialising on whether the skip size is odd.
    x = x[..., : size[0], : size[1]]
    padding = (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2])
    if mode == "constant":
        return F.pad(x, padding)
    return F.pad(x, padding, mode=mode)


def argmax_indices(
    reference: torch.Tensor, channels: int, ceil_mode: bool = False, scale: int = 2
) -> torch.Tensor:
    """Indices ``(B, channels, h, w)`` of the ``f x f`` argmax of ``reference`` ``(B, C, H, W)`` (``f``:
    ``scale``), as an ``f x f`` max-pool (stride ``f``) returns them: max-unpooling's indices where the
    encoder did not max-pool.

    ``ceil_mode`` rounds sizes that are not multiples of ``f`` as the encoder did, so ``(h, w)`` is the decoder feature's size;
    ``C`` is ``channels`` or 1 (one position for every channel).

    Rounding up pads the odd edge with -inf and pools in floor mode, then maps the indices back to the
    unpadded plane: the same indices as a ceil-mode pool, with no branch on the size's parity, so
    ``torch.export`` keeps height and width dynamic (a ceil-mode pool makes it specialise them).
    """
    if not ceil_mode:
        _, indices = F.max_pool2d(reference, kernel_size=scale, stride=scale, return_indices=True)
        return indices.expand(-1, channels, -1, -1)
    height, width = reference.shape[-2:]
    pads = (0, -width % scale, 0, -height % scale)
    padded = F.pad(reference, pads, value=float("-inf"))
    _, indices = F.max_pool2d(padded, scale, stride=scale, return_indices=True)
    # Each padded-plane index read back as its position in the unpadded plane (padding never wins).
    positions = torch.arange(height * width, device=reference.device).view(1, 1, height, width)
    return F.pad(positions, pads).flatten()[indices].expand(-1, channels, -1, -1)
