"""Class scores from a confusion matrix: per-class IoU and Dice, their means, pixel accuracy, fwIoU.

Two kinds of score, reported side by side: the class means (``miou``, ``dice``) count every class
alike, so thin rare classes weigh as much as the road; pixel accuracy (``pixel_acc``) and the
frequency-weighted IoU (``fwiou``: each class's IoU weighted by its share of the true pixels) count
pixels, so the frequent classes dominate. A model can buy mIoU with pixel accuracy; both show it.

One definition for every scope: the epoch metrics (:mod:`unet.training.metrics`) score an epoch's
summed matrix, the per-image table (:mod:`unet.evaluation.per_image`) each image's own matrix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch


def metric_key(class_name: str) -> str:
    """A class name usable in a metric tag: ``"Pet border"`` -> ``"pet_border"``."""
    return re.sub(r"[^0-9a-zA-Z_.-]+", "_", class_name.strip()).strip("_").lower() or "class"


def scores_from_confusion(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """Per-class IoU and Dice, their means over classes, pixel accuracy and fwIoU from a ``(K, K)`` matrix.

    ``confusion[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (ignored pixels are not in
    it). A class that appears in neither target nor prediction has an undefined score (NaN) and is left
    out of the means. ``fwiou`` is ``sum_c freq_c * IoU_c`` with ``freq_c`` class ``c``'s share of the
    true pixels (a class predicted but never true weighs 0).
    """
    confusion = confusion.double()
    true_positive = confusion.diag()
    false_positive = confusion.sum(0) - true_positive
    false_negative = confusion.sum(1) - true_positive
    union = true_positive + false_positive + false_negative
    iou = true_positive / union
    dice = 2 * true_positive / (union + true_positive)
    total = confusion.sum()
    frequency = confusion.sum(1) / total
    scores = {
        "miou": iou.nanmean().item(),
        "dice": dice.nanmean().item(),
        "pixel_acc": (true_positive.sum() / total).item() if total > 0 else math.nan,
        "fwiou": (frequency * iou.nan_to_num(0.0)).sum().item() if total > 0 else math.nan,
    }
    for index, name in enumerate(class_names):
        scores[f"iou/{metric_key(name)}"] = iou[index].item()
        scores[f"dice/{metric_key(name)}"] = dice[index].item()
    return scores


def confusion_per_image(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """One confusion matrix per image: ``(B, K, K)`` int64 from class-index maps ``(B, H, W)``.

    ``[b, t, p]`` counts image ``b``'s pixels of true class ``t`` predicted as ``p``; pixels whose
    target is ``ignore_index`` are not counted. Summed over ``b`` it is the batch's matrix.
    """
    if preds.shape != target.shape or preds.dim() != 3:
        raise ValueError(
            f"expected preds and target of one shape (B, H, W), got {tuple(preds.shape)} and {tuple(target.shape)}"
        )
    batch = preds.shape[0]
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    image = torch.arange(batch, device=preds.device)[:, None, None].expand_as(target)
    cells = (image[valid] * num_classes + target[valid].long()) * num_classes + preds[valid].long()
    counts = torch.bincount(cells, minlength=batch * num_classes * num_classes)
    return counts.view(batch, num_classes, num_classes)
