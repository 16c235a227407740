"""Each upsampling method does what its name promises, checked on hand-made tensors."""

import pytest
import torch
import torch.nn.functional as F

from unet.models import UPSAMPLERS, UNet


def make(name: str, in_channels: int = 4, out_channels: int = 4, **options):
    return UPSAMPLERS[name](in_channels, out_channels, **options).eval()


def identity_projection(upsampler) -> None:
    """Turn the method's 1x1 projection into the identity, so its spatial behaviour shows alone."""
    with torch.no_grad():
        upsampler.project.weight.copy_(torch.eye(upsampler.out_channels)[:, :, None, None])
        upsampler.project.bias.zero_()


@pytest.mark.parametrize("name", sorted(UPSAMPLERS))
@pytest.mark.parametrize("size", [(10, 14), (11, 15), (10, 15)])
def test_every_method_reaches_the_target_size(name, size):
    upsampler = make(name, in_channels=16, out_channels=8)
    x = torch.randn(2, 16, 5, 7)
    indices = None
    if upsampler.needs_pool_indices:
        _, indices = F.max_pool2d(torch.randn(2, 8, *size), 2, 2, return_indices=True)
    assert upsampler(x, size, indices).shape == (2, 8, *size)


def test_maxunpool_puts_each_value_at_its_argmax():
    skip = torch.tensor(
        [[[[1.0, 5.0, 0.0, 2.0], [3.0, 2.0, 9.0, 1.0], [0.0, 0.0, 1.0, 1.0], [7.0, 0.0, 1.0, 4.0]]]]
    )
    pooled, indices = F.max_pool2d(skip, 2, 2, return_indices=True)
    upsampler = make("maxunpool", 1, 1)
    identity_projection(upsampler)
    values = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]])
    out = upsampler(values, (4, 4), indices)
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 0, 1], expected[0, 0, 1, 2], expected[0, 0, 3, 0], expected[0, 0, 3, 3] = 10, 20, 30, 40
    assert torch.equal(out, expected)


def test_maxunpool_without_indices_is_an_error():
    with pytest.raises(ValueError, match="indices"):
        make("maxunpool")(torch.randn(1, 4, 3, 3), (6, 6))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("nearest", {"mode": "nearest"}), ("bilinear", {"mode": "bilinear", "align_corners": False})],
)
@pytest.mark.parametrize("size", [(14, 18), (15, 19)])
def test_interpolation_methods_match_torch_interpolate_then_projection(name, kwargs, size):
    upsampler = make(name, in_channels=6, out_channels=3)
    x = torch.randn(2, 6, 7, 9)
    expected = upsampler.project(F.interpolate(x, size=size, **kwargs))
    torch.testing.assert_close(upsampler(x, size), expected, atol=1e-5, rtol=1e-5)
    identity_projection(upsampler := make(name, 3, 3))
    torch.testing.assert_close(upsampler(x[:, :3], size), F.interpolate(x[:, :3], size=size, **kwargs))


@pytest.mark.parametrize(
    ("corner", "offset"),
    [("top_left", (0, 0)), ("top_right", (0, 1)), ("bottom_left", (1, 0)), ("bottom_right", (1, 1))],
)
def test_bed_of_nails_places_values_only_at_the_chosen_corner(corner, offset):
    upsampler = make("bed_of_nails", 2, 2, corner=corner)
    identity_projection(upsampler)
    x = torch.arange(1, 2 * 3 * 4 + 1, dtype=torch.float32).reshape(1, 2, 3, 4)
    out = upsampler(x, (6, 8))
    row, col = offset
    assert torch.equal(out[..., row::2, col::2], x)
    mask = torch.ones_like(out, dtype=torch.bool)
    mask[..., row::2, col::2] = False
    assert torch.count_nonzero(out[mask]) == 0
    assert torch.count_nonzero(upsampler(x, (7, 9))[..., 6, :]) == 0  # an odd skip's extra row stays empty


def test_bed_of_nails_rejects_unknown_corner():
    with pytest.raises(ValueError, match="corner"):
        make("bed_of_nails", corner="middle")


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_pixelshuffle_is_constant_within_each_cell_at_init(kernel_size):
    upsampler = make("pixelshuffle", 8, 4, kernel_size=kernel_size)
    out = upsampler(torch.randn(2, 8, 5, 6), (10, 12))
    cells = out.reshape(2, 4, 5, 2, 6, 2)
    assert torch.allclose(cells, cells[:, :, :, :1, :, :1].expand_as(cells))
    assert out.std() > 0


def test_bilinear_additive_sums_channel_groups_of_bilinear_upsampling():
    upsampler = make("bilinear_additive", 6, 2)
    x = torch.randn(1, 6, 4, 5)
    up = F.interpolate(x, size=(9, 10), mode="bilinear", align_corners=False)
    expected = torch.stack([up[:, 0:3].sum(1), up[:, 3:6].sum(1)], dim=1)
    torch.testing.assert_close(upsampler(x, (9, 10)), expected)
    assert sum(p.numel() for p in upsampler.parameters()) == 0
    with pytest.raises(ValueError, match="in_channels >= out_channels"):
        make("bilinear_additive", 4, 6)


def test_bilinear_additive_sums_near_equal_runs_when_widths_do_not_divide():
    upsampler = make("bilinear_additive", 5, 2)
    x = torch.randn(1, 5, 4, 4)
    sums = upsampler(x, (4, 4))  # same size: interpolation is the identity
    torch.testing.assert_close(sums, torch.stack([x[:, 0:2].sum(1), x[:, 2:5].sum(1)], dim=1))


def test_dysample_starts_as_bilinear_interpolation():
    upsampler = make("dysample", 8, 8)
    identity_projection(upsampler)
    torch.nn.init.zeros_(upsampler.offset.weight)
    x = torch.randn(2, 8, 6, 7)
    for size in [(12, 14), (13, 15)]:
        expected = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        torch.testing.assert_close(upsampler(x, size), expected, atol=1e-5, rtol=1e-5)


def test_dysample_offsets_move_the_samples():
    upsampler = make("dysample", 8, 8)
    x = torch.randn(1, 8, 6, 6)
    before = upsampler(x, (12, 12))
    with torch.no_grad():
        upsampler.offset.bias.fill_(1.0)
    assert not torch.allclose(before, upsampler(x, (12, 12)), atol=1e-3)


def parameter_count(method: str) -> int:
    return sum(
        p.numel()
        for p in UNet(in_channels=1, num_classes=2, depth=3, base_channels=8, upsample=method).parameters()
    )


def test_parameter_counts_differ_exactly_where_methods_learn():
    counts = {name: parameter_count(name) for name in UPSAMPLERS}
    # Fixed spatial operations share the same learned 1x1 projection.
    assert counts["nearest"] == counts["bilinear"] == counts["maxunpool"] == counts["bed_of_nails"]
    # Learned 2x2 kernels: 4x the projection's weights (pixelshuffle's 1x1 conv makes 4 sub-pixels).
    widths = [(16, 8), (32, 16), (64, 32)]
    projection = sum(i * o + o for i, o in widths)
    transposed_extra = sum(4 * i * o + o for i, o in widths) - projection
    assert counts["transposed"] - counts["nearest"] == transposed_extra
    assert (
        counts["pixelshuffle"] - counts["nearest"] == sum(4 * i * o + 4 * o for i, o in widths) - projection
    )
    # Parameter-free channel summation instead of a projection.
    assert counts["nearest"] - counts["bilinear_additive"] == projection
    # DySample adds an offset predictor (2 * groups * 4 outputs per stage) to the projection.
    assert counts["dysample"] - counts["nearest"] == sum(i * 32 + 32 for i, _ in widths)
