"""Class weights from the training masks, focal and Lovász-softmax losses, on cases computed by hand."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from unet.data.base import SegmentationDataModule
from unet.data.sources import ArraySource
from unet.data.statistics import class_pixel_counts, split_class_counts
from unet.training.losses import (
    CAPPED_RANGE,
    SegmentationLoss,
    class_weights_from_counts,
    focal_loss,
    lovasz_softmax_loss,
)
from unet.training.run import build_module

# Three 2x2 masks (255: void). Class 0: 5 pixels in 2 images of 4 labelled pixels; class 1: 3 in the
# same 2 images; class 2: 3 in 1 image of 3 labelled pixels.
MASKS = np.array([[[0, 0], [0, 1]], [[0, 0], [1, 1]], [[2, 2], [2, 255]]], dtype=np.uint8)
# SegNet frequencies 5/8, 3/8, 3/3; median 5/8 -> weights 1, (5/8)/(3/8), (5/8)/1.
MEDIAN_FREQUENCY = [1.0, 5 / 3, 0.625]


class ArrayDataModule(SegmentationDataModule):
    """Every split is the same in-memory arrays."""

    def __init__(self, masks: np.ndarray, num_classes: int, **common) -> None:
        super().__init__(
            num_classes=num_classes,
            class_names=[f"c{i}" for i in range(num_classes)],
            in_channels=1,
            ignore_index=255,
            mean=[0.5],
            std=[0.25],
            num_workers=0,
            **common,
        )
        self.masks = masks

    @property
    def has_test(self) -> bool:
        return False

    def split_source(self, split: str) -> ArraySource:
        return ArraySource(np.zeros((*self.masks.shape, 1), np.uint8), self.masks)


def test_counts_leave_void_pixels_out():
    counts = class_pixel_counts(ArraySource(np.zeros((3, 2, 2, 1), np.uint8), MASKS), 3, 255)
    assert counts.pixels.tolist() == [5, 3, 3]
    assert counts.images.tolist() == [2, 2, 1]
    assert counts.image_pixels.tolist() == [8, 8, 3]
    assert counts.ignored == 1
    assert counts.rare_classes() == [1]


def test_median_frequency_weights_are_segnet_balancing():
    assert class_weights_from_counts("median_frequency", [5, 3, 3], [8, 8, 3]) == pytest.approx(
        MEDIAN_FREQUENCY
    )


def test_inverse_weights_average_one_and_a_class_absent_from_training_weighs_zero():
    inverse = class_weights_from_counts("inverse", [5, 3, 3, 0], [8, 8, 3, 0])
    raw = [11 / 5, 11 / 3, 11 / 3]
    assert inverse == pytest.approx([w / (sum(raw) / 3) for w in raw] + [0.0])
    root = class_weights_from_counts("inverse_sqrt", [5, 3, 3, 0], [8, 8, 3, 0])
    assert np.mean(root[:3]) == pytest.approx(1.0) and root[3] == 0.0
    assert class_weights_from_counts("median_frequency", [5, 3, 3, 0], [8, 8, 3, 0]) == pytest.approx(
        [*MEDIAN_FREQUENCY, 0.0]
    )


def test_capped_weights_are_median_frequency_held_within_their_range():
    # a long tail: median-frequency gives the frequent classes 0.04-0.3 and the rare ones up to 10
    pixels, image_pixels = [700, 200, 60, 30, 10, 3], [1000] * 6
    median = class_weights_from_counts("median_frequency", pixels, image_pixels)
    capped = class_weights_from_counts("capped", pixels, image_pixels)
    low, high = CAPPED_RANGE
    assert min(median) < low and max(median) > high
    assert capped == pytest.approx([min(max(w, low), high) for w in median])
    assert capped[0] == low and capped[-1] == high


def test_an_unknown_kind_names_the_valid_ones():
    with pytest.raises(ValueError, match="median_frequency, capped, inverse, inverse_sqrt"):
        class_weights_from_counts("median", [1, 1], [2, 2])
    with pytest.raises(ValueError, match="resolved"):
        SegmentationLoss(class_weights="median_frequency")


def test_build_module_stores_the_numbers_and_counts_once(compose_config, caplog):
    cfg = compose_config(
        "train", "model/loss=focal", "model.loss.class_weights=median_frequency", "model.memory_format=contiguous",
        "model.optimizer.lr=1e-3", "model.net.norm=batch", "model.net.base_channels=8", "model.net.depth=2",
    )  # fmt: skip
    datamodule = ArrayDataModule(MASKS, 3)
    with caplog.at_level(logging.INFO, logger="unet.training.losses"):
        module = build_module(cfg.model, datamodule)
    assert module.hparams.loss["class_weights"] == pytest.approx(MEDIAN_FREQUENCY)
    assert module.loss_fn.class_weights.tolist() == pytest.approx(MEDIAN_FREQUENCY)
    assert "c1 1.67" in caplog.text
    assert split_class_counts(datamodule, "train") is split_class_counts(datamodule, "train")


def test_focal_with_gamma_zero_is_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 5, generator=generator)
    target = torch.randint(0, 3, (2, 5, 5), generator=generator)
    target[0, 0] = 255
    alpha = torch.tensor([0.5, 2.0, 1.0])
    expected = F.cross_entropy(logits, target, weight=alpha, ignore_index=255)
    assert focal_loss(logits, target, 0.0, alpha, 255).item() == pytest.approx(expected.item(), rel=1e-6)


def two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel a: class 0 with p = (0.8, 0.2); pixel b: class 1 with p = (0.4, 0.6); a third pixel is void."""
    probabilities = torch.tensor([[0.8, 0.4, 0.5], [0.2, 0.6, 0.5]])
    return probabilities.log().reshape(1, 2, 1, 3), torch.tensor([[[0, 1, 255]]])


def test_focal_on_two_pixels_by_hand():
    logits, target = two_pixels()
    a, b = 0.2**2 * -math.log(0.8), 0.4**2 * -math.log(0.6)
    assert focal_loss(logits, target, 2.0, None, 255).item() == pytest.approx((a + b) / 2, rel=1e-5)
    weighted = focal_loss(logits, target, 2.0, torch.tensor([1.0, 3.0]), 255).item()
    assert weighted == pytest.approx((a + 3 * b) / 4, rel=1e-5)
    loss = SegmentationLoss(ce_weight=0, dice_weight=0, focal_weight=1, ignore_index=255)
    assert loss(logits, target).item() == pytest.approx((a + b) / 2, rel=1e-5)


def test_lovasz_on_two_pixels_by_hand():
    # Class 0: errors (b 0.4 not class 0, a 0.2 class 0), Jaccard gradient (0.5, 0.5) -> 0.3.
    # Class 1: errors (b 0.4 class 1, a 0.2 not class 1), gradient (1, 0) -> 0.4. Mean 0.35.
    logits, target = two_pixels()
    assert lovasz_softmax_loss(logits, target, 255).item() == pytest.approx(0.35, rel=1e-5)


def reference_lovasz(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> float:
    """Berman et al.'s formula class by class, with plain Python loops."""
    probabilities = logits.softmax(dim=1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    labels = target.reshape(-1)
    keep = labels != ignore_index
    probabilities, labels = probabilities[keep].tolist(), labels[keep].tolist()
    losses = []
    for c in range(logits.shape[1]):
        fg = [1.0 if label == c else 0.0 for label in labels]
        if not any(fg):
            continue
        pairs = sorted(((abs(f - p[c]), f) for f, p in zip(fg, probabilities, strict=True)), reverse=True)
        total, previous, loss, seen_fg, seen_bg = sum(fg), 0.0, 0.0, 0.0, 0.0
        for error, f in pairs:
            seen_fg, seen_bg = seen_fg + f, seen_bg + (1 - f)
            jaccard = 1 - (total - seen_fg) / (total + seen_bg)
            loss += error * (jaccard - previous)
            previous = jaccard
        losses.append(loss)
    return sum(losses) / len(losses)


def test_lovasz_matches_the_formula_and_is_zero_when_perfect():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=generator)
    target = torch.randint(0, 3, (2, 6, 6), generator=generator)  # class 3 absent: left out
    target[1, :2] = 255
    assert lovasz_softmax_loss(logits, target, 255).item() == pytest.approx(
        reference_lovasz(logits, target, 255), rel=1e-5
    )
    perfect = F.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 50
    assert lovasz_softmax_loss(perfect, target, 255).item() < 1e-6
    logits.requires_grad_(True)
    lovasz_softmax_loss(logits, target, 255).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["focal", "lovasz"])
def test_loss_configs_build(compose_config, name):
    cfg = compose_config("train", f"model/loss={name}", "model.loss.class_weights=null")
    loss = instantiate(cfg.model.loss, ignore_index=255)
    logits, target = two_pixels()
    assert math.isfinite(loss(logits, target).item())
