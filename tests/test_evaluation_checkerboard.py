"""Checkerboard score on synthetic maps: smooth, pure period-2 patterns, mixtures and constants."""

import pytest
import torch

from unet.evaluation.checkerboard import CheckerboardScore, checkerboard_score


def grid(height: int = 32, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")


def smooth(height: int = 32, width: int = 32) -> torch.Tensor:
    """A Gaussian blob plus a gentle ramp: ``(1, 1, H, W)``."""
    i, j = grid(height, width)
    blob = torch.exp(-((i - height / 2) ** 2 + (j - width / 3) ** 2) / (2 * 6.0**2))
    return (blob + 0.01 * i)[None, None]


def checkerboard(height: int = 32, width: int = 32) -> torch.Tensor:
    i, j = grid(height, width)
    return ((-1) ** (i + j))[None, None]


def test_smooth_map_scores_about_zero():
    assert checkerboard_score(smooth()) < 0.01


def test_pure_checkerboard_scores_about_one_even_on_odd_sizes():
    assert checkerboard_score(checkerboard()) > 0.9
    assert checkerboard_score(checkerboard(33, 31)) > 0.9  # cropped to even size first


def test_stripes_alternating_along_one_axis_count_too():
    i, _ = grid()
    assert checkerboard_score(((-1) ** i)[None, None]) > 0.9


def test_smooth_map_with_a_small_checkerboard_scores_in_between():
    mixed = checkerboard_score(smooth() + 0.2 * checkerboard())
    assert 0.1 < mixed < 0.9
    assert checkerboard_score(smooth()) < checkerboard_score(smooth() + 0.05 * checkerboard()) < mixed


def test_constant_map_scores_zero_without_dividing_by_zero():
    assert checkerboard_score(torch.full((2, 3, 16, 16), 0.1)) == 0.0
    metric = CheckerboardScore()
    metric.update(torch.full((1, 1, 8, 8), 3.7))
    assert metric.compute().item() == 0.0


def test_epoch_score_is_the_energy_weighted_score_of_all_images():
    batches = [smooth() + 0.05 * checkerboard(), 3 * checkerboard(), smooth()]
    metric = CheckerboardScore()
    for batch in batches:
        metric.update(batch)
    assert metric.compute().item() == pytest.approx(checkerboard_score(torch.cat(batches)))


def test_needs_four_dimensional_logits():
    with pytest.raises(ValueError, match="B, K, H, W"):
        checkerboard_score(torch.zeros(8, 8))
