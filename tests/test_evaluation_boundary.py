"""Boundary F1 on hand-drawn masks whose edges are known to the pixel."""

import pytest
import torch

from unet.evaluation.boundary import (
    MATCHED_PRED,
    MATCHED_TRUE,
    PRED,
    TRUE,
    BoundaryF1,
    boundary_counts,
    boundary_counts_per_image,
    boundary_f1,
    label_edges,
)


def square(size: int = 20, top: int = 5, left: int = 5, side: int = 8) -> torch.Tensor:
    """Class 1 on a ``side x side`` square in a class-0 ``(size, size)`` map."""
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_boundary_is_the_inner_ring_of_a_square_and_image_borders_are_not_boundaries():
    mask = square(side=4)[None]
    edges = label_edges(mask, torch.ones(1, 20, 20, dtype=torch.bool))
    boundary = (edges & (mask == 1))[0]
    assert boundary.sum() == 12  # the 4x4 square's ring; its 2x2 interior has no outside neighbour
    assert not boundary[6:8, 6:8].any()
    assert (edges & (mask == 0)).sum() == 16  # the ring outside it, on class 0's side
    whole_image = label_edges(torch.ones(1, 5, 5, dtype=torch.long), torch.ones(1, 5, 5, dtype=torch.bool))
    assert not whole_image.any()


def test_perfect_prediction_scores_one():
    target = square()
    assert boundary_f1(target, target, num_classes=2) == 1.0
    batch = torch.stack([square(), square(top=2, side=10)])
    assert boundary_f1(batch, batch, num_classes=3) == 1.0  # class 2 absent everywhere: left out


def test_a_shift_within_the_tolerance_still_scores_one():
    assert boundary_f1(square(left=6), square(), num_classes=2, tolerance=1) == 1.0
    assert boundary_f1(square(left=7), square(), num_classes=2, tolerance=2) == 1.0


def test_a_shift_beyond_the_tolerance_scores_clearly_less():
    shifted = boundary_f1(square(left=9), square(), num_classes=2, tolerance=1)
    assert shifted < 0.7
    assert boundary_f1(square(left=9), square(), num_classes=2, tolerance=0) < shifted


def test_a_class_on_one_side_only_scores_zero_and_no_boundaries_at_all_score_one():
    empty = torch.zeros(20, 20, dtype=torch.long)
    assert boundary_f1(empty, square(), num_classes=2) == 0.0
    assert boundary_f1(empty, torch.ones(20, 20, dtype=torch.long), num_classes=2) == 1.0


def test_ignored_pixels_are_neither_boundaries_nor_matched():
    target = square()
    target[:, 10:] = 255  # right half of the square is void
    prediction = square()
    prediction[:, 10:] = 0  # wrong there, which must not matter
    assert boundary_f1(prediction, target, num_classes=2, ignore_index=255) == 1.0
    counts = boundary_counts(prediction, target, num_classes=2, ignore_index=255)
    # The void edge makes no boundary: the ring of the valid half-square lacks its right side.
    assert counts[3, 1] == 5 + 5 + 6  # top, bottom and left sides of the 8x5 half-square
    assert boundary_f1(prediction, square(), num_classes=2) < 0.9  # without ignore_index it is wrong


def test_accumulated_metric_equals_one_shot_on_the_concatenated_batch():
    generator = torch.Generator().manual_seed(0)
    blobs = torch.nn.functional.avg_pool2d(torch.rand(6, 3, 24, 24, generator=generator), 5, 1, 2)
    target = blobs.argmax(1)
    preds = torch.roll(target, shifts=1, dims=2)
    preds[4:] = torch.randint(0, 3, (2, 24, 24), generator=generator)
    target[0, :6] = 255
    metric = BoundaryF1(num_classes=3, tolerance=1, ignore_index=255)
    for start in range(0, 6, 2):
        metric.update(preds[start : start + 2], target[start : start + 2])
    whole = boundary_f1(preds, target, num_classes=3, tolerance=1, ignore_index=255)
    assert metric.compute().item() == pytest.approx(whole)
    batch_mean = sum(
        boundary_f1(preds[s : s + 2], target[s : s + 2], 3, tolerance=1, ignore_index=255) for s in (0, 2, 4)
    )
    assert whole != pytest.approx(batch_mean / 3)  # really pooled counts, not a mean of batch scores


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        boundary_f1(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long), 2)


def counts_by_definition(preds, target, num_classes, tolerance, ignore_index):
    """The module doc's definition, pixel by pixel: (4, K) counts of one map (H, W)."""
    height, width = target.shape
    valid = target != ignore_index

    def boundary(labels, c):
        return {
            (y, x)
            for y in range(height)
            for x in range(width)
            if valid[y, x]
            and labels[y, x] == c
            and any(
                0 <= y + dy < height
                and 0 <= x + dx < width
                and valid[y + dy, x + dx]
                and labels[y + dy, x + dx] != c
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))
            )
        }

    def matched(points, others):
        return sum(any(max(abs(y - v), abs(x - u)) <= tolerance for v, u in others) for y, x in points)

    counts = torch.zeros(4, num_classes, dtype=torch.long)
    for c in range(num_classes):
        predicted, true = boundary(preds, c), boundary(target, c)
        counts[MATCHED_PRED, c], counts[PRED, c] = matched(predicted, true), len(predicted)
        counts[MATCHED_TRUE, c], counts[TRUE, c] = matched(true, predicted), len(true)
    return counts


@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_the_counts_follow_the_definition_on_random_maps_with_void(tolerance):
    generator = torch.Generator().manual_seed(tolerance)
    target = torch.randint(0, 4, (2, 9, 11), generator=generator)
    preds = torch.randint(0, 4, (2, 9, 11), generator=generator)
    target[:, 2:4, 3:7] = 255
    counts = boundary_counts_per_image(preds, target, 4, tolerance, ignore_index=255)
    for image in range(2):
        expected = counts_by_definition(preds[image], target[image], 4, tolerance, 255)
        assert torch.equal(counts[image], expected), image
