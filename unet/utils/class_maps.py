"""The class map of per-class scores: the index of the largest score along the class dimension.

``tensor.max(dim).indices`` rather than ``tensor.argmax(dim)``: the two agree (the first largest on a
tie) but, along the channel dimension of a ``(B, K, H, W)`` tensor on a CPU, argmax runs 5-13x slower
for the few classes segmentation has (docs/results/cpu-benchmarks.md), and every training step,
validation and prediction takes one.
"""

from __future__ import annotations

import torch


def class_map(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the largest of ``scores`` along ``dim`` (logits or probabilities ``(B, K, H, W)``
    give ``(B, H, W)`` int64), as :func:`torch.argmax` gives it."""
    return scores.max(dim=dim).indices
