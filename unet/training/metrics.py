"""Epoch-level segmentation scores from one confusion matrix accumulated over all batches.

Scores are computed once from the summed confusion matrix, so they are exact over the epoch
(not an average of per-batch scores) and synchronise across processes as a single sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from unet.evaluation.boundary import BoundaryF1
from unet.evaluation.checkerboard import CheckerboardScore
from unet.evaluation.per_image import image_scores
from unet.evaluation.scores import metric_key, scores_from_confusion
from unet.utils.class_maps import class_map

__all__ = ["SegmentationScores", "SplitMetrics", "metric_key", "scores_from_confusion"]


class SegmentationScores(MulticlassConfusionMatrix):
    """A confusion-matrix metric whose ``compute`` returns :func:`scores_from_confusion`'s dict."""

    def __init__(self, class_names: Sequence[str], ignore_index: int | None = None) -> None:
        super().__init__(num_classes=len(class_names), ignore_index=ignore_index, validate_args=False)
        self.class_names = list(class_names)

    def compute(self) -> dict[str, float]:  # type: ignore[override]
        return scores_from_confusion(super().compute(), self.class_names)


class SplitMetrics(nn.Module):
    """Every epoch metric of one split: loss and class scores, and for evaluation splits boundary F1 and checkerboard.

    Boundary F1 (within ``boundary_tolerance`` pixels) and the checkerboard score of the logits (at
    ``checkerboard_period``, the last upsampling's factor) tell upsampling methods apart where mIoU
    barely moves: edge placement and stride artefacts.
    They are left out of training, where they would only cost time. Every value is a metric state that
    synchronises across processes, so a distributed evaluation scores exactly like a single process.

    ``per_image`` is ``None`` (off) or a list that every update extends with each image's scores
    (:func:`unet.evaluation.per_image.image_scores`, from the same logits), in batch order; this
    process's images only. The final scoring turns it on; during training it would only cost time.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        ignore_index: int | None = None,
        evaluation: bool = True,
        boundary_tolerance: int = 2,
        checkerboard_period: int = 2,
    ) -> None:
        super().__init__()
        self.loss = MeanMetric()
        self.scores = SegmentationScores(class_names, ignore_index)
        self.evaluation = evaluation
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.boundary_tolerance = boundary_tolerance
        self.checkerboard_period = checkerboard_period
        self.per_image: list[dict[str, float]] | None = None
        if evaluation:
            self.boundary_f1 = BoundaryF1(len(class_names), boundary_tolerance, ignore_index)
            self.checkerboard = CheckerboardScore(checkerboard_period)

    def update(self, logits: torch.Tensor, masks: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a batch: logits ``(B, K, H, W)``, masks ``(B, H, W)`` and the batch's mean loss."""
        predictions = class_map(logits)
        self.loss.update(loss, weight=len(masks))
        self.scores.update(predictions, masks)
        if self.evaluation:
            self.boundary_f1.update(predictions, masks)
            self.checkerboard.update(logits)
            if self.per_image is not None:
                self.per_image += image_scores(
                    logits,
                    masks,
                    self.class_names,
                    self.ignore_index,
                    self.boundary_tolerance,
                    self.checkerboard_period,
                )

    def compute_and_reset(self) -> dict[str, float]:
        """The epoch's values (keys ``miou``, ``iou/<class>``, ``loss``, ``boundary_f1``, ...), then start afresh."""
        values = {"loss": float(self.loss.compute()), **self.scores.compute()}
        self.loss.reset()
        self.scores.reset()
        if self.evaluation:
            for name in ("boundary_f1", "checkerboard"):
                metric = getattr(self, name)
                values[name] = float(metric.compute())
                metric.reset()
        return values
