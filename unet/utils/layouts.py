"""Tensor memory layouts by the names the configs use (``model.memory_format``, ``memory_format``)."""

from __future__ import annotations

import torch

from unet.utils.errors import ConfigError

# The one list of layouts a network can run in; ``auto`` (where a key allows it) times them and keeps the faster.
MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous": torch.contiguous_format,
    "channels_last": torch.channels_last,
}


def memory_format(name: str, key: str = "model.memory_format") -> torch.memory_format:
    """The torch layout called ``name``; a one-line :class:`ConfigError` naming ``key`` otherwise."""
    if name not in MEMORY_FORMATS:
        raise ConfigError(f"{key}={name!r}: expected one of {', '.join(MEMORY_FORMATS)}")
    return MEMORY_FORMATS[name]
