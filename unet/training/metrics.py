"""Epoch-level segmentation scores from one confusion matrix accumulated over all batches.

Scores are computed once from the summed confusion matrix, so they are exact over the epoch
(not an average of per-batch scores) and synchronise across processes as a single sum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def metric_key(class_name: str) -> str:
    """A class name usable in a metric tag: ``"Pet border"`` -> ``"pet_border"``."""
    return re.sub(r"[^0-9a-zA-Z_.-]+", "_", class_name.strip()).strip("_").lower() or "class"


def scores_from_confusion(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """Per-class IoU and Dice, their means over classes, and pixel accuracy from a ``(K, K)`` matrix.

    ``confusion[t, p]`` counts pixels of true class ``t`` predicted as ``p``. A class that appears
    in neither target nor prediction has an undefined score (NaN) and is left out of the means.
    """
    confusion = confusion.double()
    true_positive = confusion.diag()
    false_positive = confusion.sum(0) - true_positive
    false_negative = confusion.sum(1) - true_positive
    union = true_positive + false_positive + false_negative
    iou = true_positive / union
    dice = 2 * true_positive / (union + true_positive)
    total = confusion.sum()
    scores = {
        "miou": iou.nanmean().item(),
        "dice": dice.nanmean().item(),
        "pixel_acc": (true_positive.sum() / total).item() if total > 0 else math.nan,
    }
    for index, name in enumerate(class_names):
        scores[f"iou/{metric_key(name)}"] = iou[index].item()
        scores[f"dice/{metric_key(name)}"] = dice[index].item()
    return scores


class SegmentationScores(MulticlassConfusionMatrix):
    """A confusion-matrix metric whose ``compute`` returns :func:`scores_from_confusion`'s dict."""

    def __init__(self, class_names: Sequence[str], ignore_index: int | None = None) -> None:
        super().__init__(num_classes=len(class_names), ignore_index=ignore_index, validate_args=False)
        self.class_names = list(class_names)

    def compute(self) -> dict[str, float]:  # type: ignore[override]
        return scores_from_confusion(super().compute(), self.class_names)
