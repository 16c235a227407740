"""Loss and metric values on hand-made predictions, where the right answer is known."""

import math

import pytest
import torch

from unet.training.losses import SegmentationLoss, soft_dice_loss
from unet.training.metrics import SegmentationScores, scores_from_confusion
from unet.training.schedules import WarmupCosine
from unet.utils.class_maps import class_map


def perfect_logits(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * 50


def test_scores_from_a_known_confusion_matrix():
    confusion = torch.tensor([[50, 10], [5, 35]])  # rows: true class, columns: predicted
    scores = scores_from_confusion(confusion, ["cell", "membrane"])
    assert scores["iou/cell"] == pytest.approx(50 / 65)
    assert scores["iou/membrane"] == pytest.approx(35 / 50)
    assert scores["dice/membrane"] == pytest.approx(70 / 85)
    assert scores["miou"] == pytest.approx((50 / 65 + 35 / 50) / 2)
    assert scores["pixel_acc"] == pytest.approx(0.85)


def test_frequency_weighted_iou_and_pixel_accuracy_of_a_hand_computed_matrix():
    """Three classes, 100 true pixels: road 70 (IoU 60/80), pole 10 (IoU 2/14), sign 20 (IoU 12/32)."""
    confusion = torch.tensor([[60, 4, 6], [2, 2, 6], [8, 0, 12]])
    scores = scores_from_confusion(confusion, ["road", "pole", "sign"])
    assert scores["iou/road"] == pytest.approx(60 / 80)
    assert scores["iou/pole"] == pytest.approx(2 / 14)
    assert scores["iou/sign"] == pytest.approx(12 / 32)
    assert scores["pixel_acc"] == pytest.approx(74 / 100)
    assert scores["fwiou"] == pytest.approx(0.7 * 60 / 80 + 0.1 * 2 / 14 + 0.2 * 12 / 32)
    assert scores["fwiou"] > scores["miou"]  # the frequent class counts more


def test_a_class_only_predicted_weighs_nothing_in_fwiou_and_an_absent_one_is_no_nan():
    scores = scores_from_confusion(torch.tensor([[8, 2, 0], [0, 0, 0], [0, 0, 0]]), ["a", "b", "c"])
    assert scores["iou/b"] == 0.0 and math.isnan(scores["iou/c"])
    assert scores["fwiou"] == pytest.approx(8 / 10)


def test_a_class_absent_from_target_and_prediction_is_left_out_of_the_mean():
    scores = scores_from_confusion(torch.tensor([[10, 0, 0], [0, 10, 0], [0, 0, 0]]), ["a", "b", "c"])
    assert math.isnan(scores["iou/c"])
    assert scores["miou"] == 1.0


def test_epoch_scores_equal_scores_of_all_pixels_at_once_not_a_mean_of_batches():
    generator = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 3, (6, 16, 16), generator=generator)
    target = torch.randint(0, 3, (6, 16, 16), generator=generator)
    target[0, :8] = 255
    per_batch = SegmentationScores(["a", "b", "c"], ignore_index=255)
    for start in range(0, 6, 2):
        per_batch.update(preds[start : start + 2], target[start : start + 2])
    whole = SegmentationScores(["a", "b", "c"], ignore_index=255)
    whole.update(preds, target)
    assert per_batch.compute() == pytest.approx(whole.compute())
    valid = target != 255
    assert whole.compute()["pixel_acc"] == pytest.approx(
        (preds[valid] == target[valid]).float().mean().item()
    )
    frequency = torch.bincount(target[valid], minlength=3).double() / valid.sum()
    ious = torch.tensor([whole.compute()[f"iou/{name}"] for name in "abc"]).double()
    assert whole.compute()["fwiou"] == pytest.approx(
        (frequency * ious).sum().item()
    )  # ignored pixels excluded


def test_ignored_pixels_do_not_count():
    scores = SegmentationScores(["a", "b"], ignore_index=255)
    target = torch.tensor([[[0, 1, 255, 255]]])
    scores.update(torch.tensor([[[0, 1, 0, 1]]]), target)
    assert scores.compute()["miou"] == 1.0


def test_perfect_prediction_has_near_zero_loss_and_wrong_prediction_high_loss():
    target = torch.randint(0, 3, (2, 8, 8))
    loss = SegmentationLoss()
    assert loss(perfect_logits(target, 3), target).item() < 1e-3
    assert loss(perfect_logits((target + 1) % 3, 3), target).item() > 10


def test_dice_loss_ignores_void_pixels_and_ce_weight_zero_is_pure_dice():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    logits = perfect_logits(target, 2)
    void_target = target.clone()
    void_target[0, 0] = 255
    wrong_where_void = logits.clone()
    wrong_where_void[0, :, 0] = logits[0, :, 0].flip(0)
    assert soft_dice_loss(wrong_where_void, void_target, ignore_index=255).item() < 1e-3
    dice_only = SegmentationLoss(ce_weight=0.0, dice_weight=1.0, ignore_index=255)
    assert dice_only(wrong_where_void, void_target).item() == pytest.approx(
        soft_dice_loss(wrong_where_void, void_target, 255).item()
    )


def test_class_weights_change_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits, target = (
        torch.randn(2, 2, 8, 8, generator=generator),
        torch.randint(0, 2, (2, 8, 8), generator=generator),
    )
    plain = SegmentationLoss(dice_weight=0.0)(logits, target)
    weighted = SegmentationLoss(dice_weight=0.0, class_weights=[1.0, 5.0])(logits, target)
    assert not torch.isclose(plain, weighted)


def test_loss_weights_must_not_both_be_zero():
    with pytest.raises(ValueError, match="not both 0"):
        SegmentationLoss(ce_weight=0.0, dice_weight=0.0)


def test_warmup_cosine_schedule_shape():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupCosine(optimizer, total_steps=100, warmup_steps=10, min_lr_ratio=0.0)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(1 / 11)
    assert max(lrs) == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5, abs=0.02)
    assert lrs[-1] < 0.01


def test_soft_dice_equals_its_one_hot_definition_with_its_gradient_and_in_bf16():
    """Dice per class over the batch: 2 * sum(p_c on class-c pixels) / (sum(p_c) + count(c)), ignored
    pixels in neither; computed without a one-hot tensor, it must match the one-hot formula."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 17, 23, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (3, 17, 23))
    target[:, :4] = 255
    probabilities = logits.softmax(dim=1)
    valid = (target != 255).unsqueeze(1).double()
    one_hot = torch.nn.functional.one_hot(target.clamp(max=4), 5).permute(0, 3, 1, 2).double()
    intersection = (probabilities * one_hot * valid).sum((0, 2, 3))
    cardinality = ((probabilities + one_hot) * valid).sum((0, 2, 3))
    expected = 1 - ((2 * intersection + 1) / (cardinality + 1)).mean()
    loss = soft_dice_loss(logits, target, ignore_index=255)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    (got,) = torch.autograd.grad(loss, logits)
    (want,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(got, want)
    # bf16 logits (autocast's output) still sum over the pixels in float32
    low = soft_dice_loss(logits.detach().to(torch.bfloat16), target, ignore_index=255)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(expected.item(), abs=5e-3)


def test_the_class_map_is_argmax_ties_included():
    scores = torch.randn(2, 7, 9, 11)
    scores[:, 3] = scores[:, 5] = scores.max(dim=1).values + 1  # a tie: the first largest wins
    assert torch.equal(class_map(scores), scores.argmax(dim=1)) and (class_map(scores) == 3).all()
    assert torch.equal(class_map(scores[0], dim=0), scores[0].argmax(dim=0))
