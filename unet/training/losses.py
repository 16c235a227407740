"""Segmentation losses: cross-entropy, soft Dice, focal, Lovász-softmax, and their weighted sum.

Every loss maps ``(logits (B, K, H, W), target (B, H, W))`` to a scalar and leaves ``ignore_index``
pixels out. Class weights for imbalanced data can be computed from the training masks
(:func:`class_weights_from_counts`, resolved once by :func:`unet.training.run.build_module`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from unet.data.base import SegmentationDataModule
from unet.data.errors import DataError
from unet.data.statistics import split_class_counts
from unet.utils.errors import ConfigError

log = logging.getLogger(__name__)


def valid_pixels(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """``(B, H, W)`` bool: the pixels that count (all of them without an ``ignore_index``)."""
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """``1 - mean over classes of soft Dice`` between softmax ``(B, K, H, W)`` and labels ``(B, H, W)``.

    Dice is computed over the whole batch per class (not per image), which is stable for classes
    absent from some images; ignored pixels count neither as prediction nor as target.
    Each class's intersection sums the probability of the true class over its pixels (a gather and an
    index-add), not a one-hot ``(B, K, H, W)`` product: the same sums at a third of the cost on a CPU.
    """
    num_classes = logits.shape[1]
    probabilities = logits.softmax(dim=1)
    valid = valid_pixels(target, ignore_index)
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    # Sums over a batch's pixels, accumulated in at least float32 (a bf16 index-add would lose them).
    dtype = torch.promote_types(probabilities.dtype, torch.float32)
    weight = valid.to(dtype)  # (B, H, W)
    true_class = probabilities.gather(1, safe_target.unsqueeze(1)).squeeze(1).to(dtype) * weight
    labels = safe_target.flatten()
    intersection = weight.new_zeros(num_classes).index_add(0, labels, true_class.flatten())
    target_pixels = weight.new_zeros(num_classes).index_add(0, labels, weight.flatten())
    predicted = (probabilities.to(dtype) * weight.unsqueeze(1)).sum((0, 2, 3))
    dice = (2 * intersection + smooth) / (predicted + target_pixels + smooth)
    return 1 - dice.mean()


# A class weighting: the present classes' weights ``(K',)`` from their labelled pixels and the labelled
# pixels of the images holding them (both ``(K',)``, float64).
ClassWeighting = Callable[[np.ndarray, np.ndarray], np.ndarray]
CLASS_WEIGHTINGS: dict[str, ClassWeighting] = {}
# ``capped``: median-frequency weights held within these bounds (docs/results/class-weighting.md).
CAPPED_RANGE = (0.5, 2.0)


def class_weighting(name: str) -> Callable[[ClassWeighting], ClassWeighting]:
    """Register a kind of ``model.loss.class_weights`` computed from the training masks."""

    def register(function: ClassWeighting) -> ClassWeighting:
        CLASS_WEIGHTINGS[name] = function
        return function

    return register


@class_weighting("median_frequency")
def median_frequency(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """SegNet's (Badrinarayanan et al. 2017, after Eigen & Fergus 2015): ``median(freq) / freq_c`` with
    ``freq_c = pixels[c] / image_pixels[c]``; a class at the median weighs 1."""
    frequency = pixels / image_pixels
    return np.median(frequency) / frequency


@class_weighting("capped")
def capped(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Median-frequency weights held within :data:`CAPPED_RANGE`: the rare classes count more, without
    the frequent ones falling to a fraction of their say (the trade that cost pixel accuracy)."""
    return np.clip(median_frequency(pixels, image_pixels), *CAPPED_RANGE)


def _mean_one(raw: np.ndarray) -> np.ndarray:
    return raw / raw.mean()


@class_weighting("inverse")
def inverse(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """``1 / p_c`` with ``p_c`` the class's share of the labelled pixels, scaled to average 1."""
    return _mean_one(pixels.sum() / pixels)


@class_weighting("inverse_sqrt")
def inverse_sqrt(pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """``1 / sqrt(p_c)``, scaled to average 1: a milder re-weighting than ``inverse``."""
    return _mean_one(np.sqrt(pixels.sum() / pixels))


def class_weights_from_counts(kind: str, pixels: Sequence[int], image_pixels: Sequence[int]) -> list[float]:
    """Per-class weights ``(K,)`` of the registered ``kind`` (:data:`CLASS_WEIGHTINGS`) from the training
    masks' counts (see :class:`unet.data.statistics.ClassCounts`): ``pixels[c]`` are class ``c``'s
    labelled pixels, ``image_pixels[c]`` the labelled pixels of the images that contain ``c``.

    A class absent from the training masks gets weight 0: it is never a target there, so no weight
    could act on it, and 0 keeps it out of the median and the mean.
    """
    if kind not in CLASS_WEIGHTINGS:
        raise ConfigError(
            f"model.loss.class_weights: unknown kind {kind!r}; expected a list of floats, null, "
            f"or one of {', '.join(CLASS_WEIGHTINGS)}"
        )
    pixels = np.asarray(pixels, dtype=np.float64)
    image_pixels = np.asarray(image_pixels, dtype=np.float64)
    present = pixels > 0
    if not present.any():
        raise DataError(f"model.loss.class_weights={kind}: the training masks hold no labelled pixel")
    weights = np.zeros_like(pixels)
    weights[present] = CLASS_WEIGHTINGS[kind](pixels[present], image_pixels[present])
    return [float(w) for w in weights]


def resolve_class_weights(loss: Mapping[str, Any] | None, datamodule: SegmentationDataModule) -> Any:
    """``loss`` with a ``class_weights`` kind (``median_frequency``, ...) replaced by the numbers of the training masks.

    Counted once per datamodule (:func:`unet.data.statistics.split_class_counts`), from the raw training
    samples, and logged per class. The numbers, not the kind, then go into the module's hyper-parameters,
    so evaluation, export and resuming from its checkpoint use the same weights. Any other ``loss``
    (no weights, a list) is returned unchanged.
    """
    kind = None if loss is None else loss.get("class_weights")
    if not isinstance(kind, str):
        return loss
    counts = split_class_counts(datamodule, "train")
    weights = class_weights_from_counts(kind, counts.pixels, counts.image_pixels)
    log.info(
        "class weights (%s, from the training masks): %s",
        kind,
        ", ".join(f"{name} {w:.3g}" for name, w in zip(datamodule.class_names, weights, strict=True)),
    )
    plain = OmegaConf.to_container(loss, resolve=True) if isinstance(loss, DictConfig) else dict(loss)
    return {**plain, "class_weights": weights}


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over valid pixels.

    Down-weights pixels already classified well, so the many easy background pixels stop drowning the
    rare hard ones. With ``alpha`` ``(K,)`` the mean is weighted by ``alpha_t`` as ``F.cross_entropy``
    weights it, so ``gamma=0`` is exactly (weighted) cross-entropy.
    """
    valid = valid_pixels(target, ignore_index)
    safe_target = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(1)
    log_p = logits.float().log_softmax(dim=1).gather(1, safe_target).squeeze(1)
    loss = -((1 - log_p.exp()).clamp(min=0) ** gamma) * log_p
    weight = valid.to(loss.dtype)
    if alpha is not None:
        weight = weight * alpha.to(loss.device, loss.dtype)[safe_target.squeeze(1)]
    total = weight.sum()
    return (loss * weight).sum() / total if total > 0 else (loss * weight).sum()


def lovasz_softmax_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None
) -> torch.Tensor:
    """Lovász-softmax (Berman et al. 2018), over the whole batch, averaged over the classes present.

    The Lovász extension of the Jaccard loss ``1 - IoU`` per class: a convex surrogate that optimises
    the metric itself, so a small class counts as much as a large one. Class ``c``'s errors
    ``|[y = c] - p_c|`` over the valid pixels are sorted in decreasing order and weighted by the
    discrete gradient of the Jaccard loss along that order. Classes with no pixel in ``target`` are
    left out ("present" classes, the paper's default); a batch with no valid pixel gives 0.
    """
    num_classes = logits.shape[1]
    probabilities = logits.float().softmax(dim=1).permute(1, 0, 2, 3).reshape(num_classes, -1)  # (K, P)
    valid = valid_pixels(target, ignore_index).reshape(-1)
    probabilities, labels = probabilities[:, valid], target.reshape(-1)[valid]
    foreground = (labels.unsqueeze(0) == torch.arange(num_classes, device=labels.device).unsqueeze(1)).float()
    present = foreground.sum(dim=1) > 0
    if not present.any():
        return logits.sum() * 0.0
    probabilities, foreground = probabilities[present], foreground[present]
    errors, order = (foreground - probabilities).abs().sort(dim=1, descending=True)
    foreground = foreground.gather(1, order)
    # Jaccard loss of the prefixes of the sorted order, then its discrete gradient (Alg. 1 of the paper).
    total = foreground.sum(dim=1, keepdim=True)
    intersection = total - foreground.cumsum(dim=1)
    union = total + (1 - foreground).cumsum(dim=1)
    jaccard = 1 - intersection / union
    gradient = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (errors * gradient).sum(dim=1).mean()


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + dice_weight * soft Dice + focal_weight * focal + lovasz_weight * Lovász-softmax``.

    Set a weight to 0 to leave its term out (``configs/model/loss/``: ``ce_dice``, ``ce``, ``dice``,
    ``focal``, ``lovasz``).

    Args:
        class_weights: per-class weights ``(K,)`` of cross-entropy and the focal loss's ``alpha`` (e.g. to
            up-weight a thin foreground class). In a config, a kind of :data:`CLASS_WEIGHTINGS`
            (``median_frequency``, ``capped``, ``inverse``, ``inverse_sqrt``) is computed from the training masks before the loss is built
            (:func:`class_weights_from_counts`); here they are numbers.
        ignore_index: label of void pixels, excluded from every term.
        focal_gamma: the focal loss's focusing exponent (0: cross-entropy).
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        dice_smooth: float = 1.0,
        focal_weight: float = 0.0,
        lovasz_weight: float = 0.0,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        terms = {"ce": ce_weight, "dice": dice_weight, "focal": focal_weight, "lovasz": lovasz_weight}
        if min(terms.values()) < 0 or sum(terms.values()) == 0:
            raise ConfigError(
                f"loss weights must be >= 0 and not all 0 (ce and dice not both 0 unless focal or lovasz "
                f"is set); got {terms}"
            )
        if isinstance(class_weights, str):
            raise ValueError(
                f"class_weights={class_weights!r} must be resolved to numbers from the training masks first "
                "(unet.training.run.build_module does), or be a list of floats"
            )
        if focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0, got {focal_gamma}")
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.focal_weight = focal_weight
        self.lovasz_weight = lovasz_weight
        self.focal_gamma = focal_gamma
        self.ignore_index = ignore_index
        self.dice_smooth = dice_smooth
        weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = logits.new_zeros(())
        if self.ce_weight:
            ignore = -100 if self.ignore_index is None else self.ignore_index
            ce = F.cross_entropy(logits, target, weight=self.class_weights, ignore_index=ignore)
            loss = loss + self.ce_weight * ce
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(
                logits, target, self.ignore_index, self.dice_smooth
            )
        if self.focal_weight:
            focal = focal_loss(logits, target, self.focal_gamma, self.class_weights, self.ignore_index)
            loss = loss + self.focal_weight * focal
        if self.lovasz_weight:
            loss = loss + self.lovasz_weight * lovasz_softmax_loss(logits, target, self.ignore_index)
        return loss
