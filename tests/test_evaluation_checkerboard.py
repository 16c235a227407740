"""Checkerboard score on synthetic maps (smooth, pure period-2 and period-4 patterns, mixtures, constants)
and on what transposed convolutions paint at x2 and x4."""

import pytest
import torch

from unet.evaluation.checkerboard import CheckerboardScore, checkerboard_score
from unet.models import UPSAMPLERS, UNet


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


def test_needs_four_dimensional_logits_and_a_period_of_at_least_two():
    with pytest.raises(ValueError, match="B, K, H, W"):
        checkerboard_score(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="period must be an integer >= 2, got 1"):
        checkerboard_score(smooth(), period=1)


def test_a_period_4_pattern_is_seen_at_period_4_and_not_at_2():
    """Rows of 2, 2, 1, 1 (a stride-4 overlap's counts) have no period-2 component at all."""
    i, _ = grid(34, 33)  # cropped to 32 x 32 at period 4
    stripes = torch.tensor([2.0, 2.0, 1.0, 1.0])[i.long() % 4][None, None]
    assert checkerboard_score(stripes, period=4) > 0.99 and checkerboard_score(stripes, period=2) < 1e-9
    assert checkerboard_score(checkerboard(), period=4) > 0.99  # period 2 is also a period 4
    assert checkerboard_score(smooth(), period=4) < 0.01
    assert CheckerboardScore(period=4).period == 4


def transposed_output(kernel_size: int, stride: int) -> torch.Tensor:
    """A transposed conv of a kernel of ones (ICNR-like: its ``s*s`` phases start equal) on a smooth 12x12
    map: ``(1, 1, 12s, 12s)``."""
    upsampler = UPSAMPLERS["transposed"](1, 1, kernel_size=kernel_size, scale=stride).eval()
    with torch.no_grad():
        upsampler.deconv.weight.fill_(1.0)
        upsampler.deconv.bias.zero_()
        return upsampler(smooth(12, 12), (12 * stride, 12 * stride))


@pytest.mark.parametrize(("stride", "uneven", "even"), [(2, 3, (2, 4)), (4, 6, (4, 8))])
def test_uneven_overlap_scores_higher_than_kernels_that_are_multiples_of_the_stride(stride, uneven, even):
    """Odena et al.: k not a multiple of s paints the checkerboard; k = s or 2s with equal phases does not."""
    scores = {k: checkerboard_score(transposed_output(k, stride), period=stride) for k in (uneven, *even)}
    assert scores[uneven] > 0.3 and all(scores[k] < 0.01 for k in even), scores
    if stride == 4:  # the x4 pattern repeats every 4 pixels: a period-2 score misses it
        assert checkerboard_score(transposed_output(uneven, stride), period=2) < 0.01


def test_a_runs_checkerboard_period_is_its_networks_last_upsampling_factor():
    from unet.training.module import SegmentationModule

    assert UNet(1, 2, depth=2, base_channels=4).output_factor == 2
    net = {"_target_": "unet.models.UNet", "depth": 2, "base_channels": 4, "scale": [4, 2]}
    module = SegmentationModule(in_channels=1, num_classes=2, class_names=["a", "b"], net=net)
    assert module.val_metrics.checkerboard.period == module.test_metrics.checkerboard.period == 4
