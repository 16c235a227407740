"""Per-channel mean/std as tensors that broadcast over ``(C, H, W)`` images."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def channel_tensor(values: Sequence[float]) -> torch.Tensor:
    """Per-channel values (e.g. a data set's mean, in 0..1 units) as float32 ``(C, 1, 1)``."""
    return torch.as_tensor(list(values), dtype=torch.float32).view(-1, 1, 1)
