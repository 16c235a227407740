"""Segmentation losses: cross-entropy, soft Dice, and their weighted sum."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """``1 - mean over classes of soft Dice`` between softmax ``(B, K, H, W)`` and labels ``(B, H, W)``.

    Dice is computed over the whole batch per class (not per image), which is stable for classes
    absent from some images; ignored pixels count neither as prediction nor as target.
    """
    num_classes = logits.shape[1]
    probabilities = logits.softmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).to(probabilities.dtype)
    weight = valid.unsqueeze(1).to(probabilities.dtype)
    dims = (0, 2, 3)
    intersection = (probabilities * one_hot * weight).sum(dims)
    cardinality = ((probabilities + one_hot) * weight).sum(dims)
    dice = (2 * intersection + smooth) / (cardinality + smooth)
    return 1 - dice.mean()


class SegmentationLoss(nn.Module):
    """``ce_weight * cross_entropy + dice_weight * soft_dice``; set a weight to 0 to use one alone.

    Args:
        class_weights: per-class cross-entropy weights (e.g. to up-weight a thin foreground class).
        ignore_index: label of void pixels, excluded from both terms.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        dice_smooth: float = 1.0,
    ) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0; got ce={ce_weight}, dice={dice_weight}"
            )
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.dice_smooth = dice_smooth
        weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = logits.new_zeros(())
        if self.ce_weight:
            ignore = -100 if self.ignore_index is None else self.ignore_index
            ce = F.cross_entropy(logits.float(), target, weight=self.class_weights, ignore_index=ignore)
            loss = loss + self.ce_weight * ce
        if self.dice_weight:
            dice = soft_dice_loss(logits.float(), target, self.ignore_index, self.dice_smooth)
            loss = loss + self.dice_weight * dice
        return loss
