"""Boundary F1 (the BF score of Csurka et al., 2013): do predicted class edges sit where the true ones do?

mIoU barely moves when an object's outline is a pixel or two off, yet blurry or blocky outlines are
exactly where decoder upsampling methods differ; this score looks only at the outlines.

Definitions (per class ``c``, per image):

* A *boundary pixel* is a pixel of class ``c`` with a 4-neighbour (up, down, left, right) that is a
  valid pixel of another class. Image borders are not boundaries. Pixels whose target is
  ``ignore_index`` are never boundary pixels, and as neighbours they make no boundary either: their
  label is unknown, and a void band around every object (as in VOC) would otherwise add boundaries
  that every prediction matches for free. The prediction is read on the same valid pixels.
* A boundary pixel is *matched* when a boundary pixel of the other map lies within ``tolerance``
  pixels in **Chebyshev distance** (inside the ``(2t+1) x (2t+1)`` square around it), which is what
  a max-pool dilation with a ``2t+1`` kernel computes.
* Precision = matched predicted boundary pixels / predicted boundary pixels; recall = matched true
  boundary pixels / true boundary pixels; F1 = their harmonic mean.

Counts are summed over every image before the ratios are taken, so a batch, or an epoch of batches
via :class:`BoundaryF1`, gets one exact score (not a mean of per-image or per-batch scores). The
score is the mean F1 over classes that have a boundary in the target or the prediction; a class with
boundary pixels on one side only scores 0. When no class has a boundary anywhere, prediction and
target agree that there are no edges and the score is 1.0 (region errors are mIoU's business).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

# Rows of the ``(4, K)`` count tensor.
MATCHED_PRED, PRED, MATCHED_TRUE, TRUE = range(4)


def label_edges(labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of every class at once ``(B, H, W)`` bool, of a class-index map ``(B, H, W)``: valid
    pixels with a valid 4-neighbour of another class (a class ``c``'s are ``edges & (labels == c)``).
    One pass for all classes, not one per class."""
    edges = torch.zeros_like(valid)
    rows = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    edges[:, 1:] |= rows
    edges[:, :-1] |= rows
    columns = (labels[:, :, 1:] != labels[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]
    edges[:, :, 1:] |= columns
    edges[:, :, :-1] |= columns
    return edges


def dilate(mask: torch.Tensor, tolerance: int) -> torch.Tensor:
    """Pixels within Chebyshev distance ``tolerance`` of a set pixel of ``(B, H, W)`` bool ``mask``: a
    square max-pool, as a row pass then a column pass (2k comparisons a pixel rather than k^2)."""
    if tolerance == 0:
        return mask
    kernel = 2 * tolerance + 1
    spread = F.max_pool2d(mask[:, None].float(), (1, kernel), stride=1, padding=(0, tolerance))
    spread = F.max_pool2d(spread, (kernel, 1), stride=1, padding=(tolerance, 0))
    return spread[:, 0] > 0


def boundary_counts_per_image(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    tolerance: int = 2,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Per-image, per-class boundary counts ``(B, 4, K)`` int64 of a batch ``(B, H, W)`` or one map ``(H, W)``.

    Rows: matched predicted, predicted, matched true and true boundary pixels (see the module doc).
    Each image's counts are its own (dilation never crosses images), so their sum is the batch's.
    """
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
    if preds.dim() == 2:
        preds, target = preds[None], target[None]
    if preds.dim() != 3:
        raise ValueError(f"expected (B, H, W) or (H, W) class indices, got shape {tuple(preds.shape)}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    counts = torch.zeros(preds.shape[0], 4, num_classes, dtype=torch.long, device=preds.device)
    pixels = (1, 2)
    pred_edges, true_edges = label_edges(preds, valid), label_edges(target, valid)
    # One class at a time keeps memory at a few (B, H, W) maps however many classes there are.
    for c in range(num_classes):
        pred_boundary = pred_edges & (preds == c)
        true_boundary = true_edges & (target == c)
        counts[:, MATCHED_PRED, c] = (pred_boundary & dilate(true_boundary, tolerance)).sum(pixels)
        counts[:, PRED, c] = pred_boundary.sum(pixels)
        counts[:, MATCHED_TRUE, c] = (true_boundary & dilate(pred_boundary, tolerance)).sum(pixels)
        counts[:, TRUE, c] = true_boundary.sum(pixels)
    return counts


def boundary_counts(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    tolerance: int = 2,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Per-class boundary counts ``(4, K)`` int64 summed over a batch ``(B, H, W)`` or one map ``(H, W)``."""
    return boundary_counts_per_image(preds, target, num_classes, tolerance, ignore_index).sum(0)


def f1_from_counts(counts: torch.Tensor) -> float:
    """Mean boundary F1 over the classes with any boundary, from :func:`boundary_counts`' ``(4, K)``."""
    counts = counts.double()
    present = (counts[PRED] > 0) | (counts[TRUE] > 0)
    if not present.any():
        return 1.0
    precision = counts[MATCHED_PRED] / counts[PRED].clamp(min=1)
    recall = counts[MATCHED_TRUE] / counts[TRUE].clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=torch.finfo(torch.float64).tiny)
    return f1[present].mean().item()


def boundary_f1(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    tolerance: int = 2,
    ignore_index: int | None = None,
) -> float:
    """Boundary F1 of class-index maps ``(B, H, W)`` or ``(H, W)``, counts pooled over the batch."""
    return f1_from_counts(boundary_counts(preds, target, num_classes, tolerance, ignore_index))


class BoundaryF1(Metric):
    """Boundary F1 over an epoch: the per-class counts are summed, so the score is exact over all images."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self, num_classes: int, tolerance: int = 2, ignore_index: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.ignore_index = ignore_index
        self.add_state("counts", default=torch.zeros(4, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of class-index maps ``(B, H, W)``."""
        self.counts += boundary_counts(preds, target, self.num_classes, self.tolerance, self.ignore_index)

    def compute(self) -> torch.Tensor:
        return torch.tensor(f1_from_counts(self.counts))
