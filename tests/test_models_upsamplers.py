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


class UpsamplersAlone(torch.nn.Module):
    """The smallest network that runs upsamplers as decoder stages do, one per ``(method, f, options)`` of
    ``stages``: ``(B, C, H, W)`` is max-pooled ``f x f`` (the encoder's step, with its indices), widened to
    ``2C`` and upsampled back to ``(H, W)``; the stages' outputs are concatenated along the channels."""

    def __init__(self, stages: list[tuple[str, int, dict]], channels: int = 8) -> None:
        super().__init__()
        self.stages = stages
        self.upsamplers = torch.nn.ModuleList(
            make(name, 2 * channels, channels, scale=scale, **options) for name, scale, options in stages
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        outputs = []
        for upsampler in self.upsamplers:
            pooled, indices = F.max_pool2d(image, upsampler.scale, upsampler.scale, return_indices=True)
            widened = torch.cat([pooled, pooled.square()], dim=1)
            outputs.append(upsampler(widened, (image.shape[-2], image.shape[-1]), indices))
        return torch.cat(outputs, dim=1)


def export_with_parity(stages: list[tuple[str, int, dict]], export_format: str, path) -> None:
    """Export the stages once with dynamic sizes (an export's fixed cost is paid once), then check the file
    against PyTorch, stage by stage, at two sizes it was not traced at: the exporter's own check
    (``(3f + 1, 2f + 6)`` for the largest ``f``: odd rows) and ``(16, 19)`` (rows a multiple of 2 and
    4, the most columns a 4x4 floor pool leaves over)."""
    from unet.export.exporters import EXPORTERS

    torch.manual_seed(0)
    model = UpsamplersAlone(stages).eval()
    metadata = {"in_channels": 8, "min_size": max(scale for _, scale, _ in stages)}
    run = EXPORTERS[export_format](model, path, metadata, 1e-4)
    assert metadata["check_max_abs_diff"] <= 1e-4
    images = torch.randn(1, 8, 16, 19)
    with torch.no_grad():
        expected = model(images)
    exported = torch.from_numpy(run(images.numpy()))
    widths = [upsampler.out_channels for upsampler in model.upsamplers]
    for stage, mine, theirs in zip(stages, expected.split(widths, 1), exported.split(widths, 1), strict=True):
        assert (mine - theirs).abs().max() <= 1e-4, stage


def test_every_method_exports_to_onnx_with_parity_at_x2_and_x4_on_odd_and_even_sizes(tmp_path):
    """The registry-wide export test: every method at x2 and x4, each a stage of one ONNX export; a
    mismatch names its method and factor.

    Slow: one ONNX export traces 20 upsamplers. Tracing is most of an export's time and each export adds
    a fixed cost, so the methods run alone (without the U-Net's conv blocks) and share one export, which
    costs less than one export per method and factor.
    """
    stages = [(name, scale, {}) for name in sorted(UPSAMPLERS) for scale in (2, 4)]
    export_with_parity(stages, "onnx", tmp_path / "model.onnx")


def test_maxunpool_at_x4_exports_to_pt2_with_parity(tmp_path):
    """4x4 pool indices through ``torch.export``'s own format (the ONNX test above covers every method)."""
    export_with_parity([("maxunpool", 4, {})], "pt2", tmp_path / "model.pt2")


@pytest.mark.parametrize("name", sorted(UPSAMPLERS))
@pytest.mark.parametrize(
    ("scale", "extra"), [(2, (0, 0)), (2, (1, 1)), (2, (0, 1)), (4, (0, 0)), (4, (1, 3)), (4, (3, 2))]
)
def test_every_method_reaches_the_target_size(name, scale, extra):
    """A skip ``f*h + r`` (``r < f``: what an ``f x f`` floor pool leaves) is reached exactly."""
    size = (scale * 5 + extra[0], scale * 7 + extra[1])
    upsampler = make(name, in_channels=16, out_channels=8, scale=scale)
    x = torch.randn(2, 16, 5, 7)
    indices = None
    if upsampler.needs_pool_indices:
        _, indices = F.max_pool2d(torch.randn(2, 8, *size), scale, scale, return_indices=True)
    out = upsampler(x, size, indices)
    width = 16 // scale**2 if name == "bilinear_additive" else 8  # C_in / f**2: the paper's width
    assert out.shape == (2, width, *size) and torch.isfinite(out).all()


@pytest.mark.parametrize("scale", [1, 0, 2.0, True, "4"])
def test_a_scale_must_be_an_integer_of_at_least_two(scale):
    with pytest.raises(ValueError, match=f"an upsampling scale must be an integer >= 2, got {scale!r}"):
        make("nearest", scale=scale)


def test_maxunpool_at_x4_puts_each_value_back_at_its_4x4_argmax():
    skip = torch.randn(1, 1, 9, 10)  # 9 x 10: a 4x4 floor pool leaves a row and two columns over
    _, indices = F.max_pool2d(skip, 4, 4, return_indices=True)
    upsampler = make("maxunpool", 1, 1, scale=4)
    identity_projection(upsampler)
    values = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]])
    out = upsampler(values, (9, 10), indices)
    for value, index in zip(values.flatten(), indices.flatten(), strict=True):
        assert out.flatten()[index] == value
    assert torch.count_nonzero(out) == 4
    # Each value lies inside its own 4x4 cell, where the skip had that cell's maximum.
    cells = skip[..., :8, :8].reshape(1, 1, 2, 4, 2, 4)
    assert torch.equal(skip.flatten()[indices.flatten()], cells.amax(dim=(3, 5)).flatten())


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


@pytest.mark.parametrize(
    ("corner", "offset"),
    [("top_left", (0, 0)), ("top_right", (0, 3)), ("bottom_left", (3, 0)), ("bottom_right", (3, 3))],
)
def test_bed_of_nails_at_x4_places_values_at_the_corner_of_4x4_cells(corner, offset):
    upsampler = make("bed_of_nails", 2, 2, corner=corner, scale=4)
    identity_projection(upsampler)
    x = torch.arange(1, 2 * 3 * 4 + 1, dtype=torch.float32).reshape(1, 2, 3, 4)
    out = upsampler(x, (15, 18))  # 3 rows and 2 columns past 4h x 4w stay empty
    row, col = offset
    assert torch.equal(out[..., row:12:4, col:16:4], x)
    assert torch.count_nonzero(out) == x.numel()


def test_bed_of_nails_rejects_unknown_corner():
    with pytest.raises(ValueError, match="corner"):
        make("bed_of_nails", corner="middle")


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("scale", [2, 4])
def test_pixelshuffle_is_constant_within_each_cell_at_init(kernel_size, scale):
    upsampler = make("pixelshuffle", 8, 4, kernel_size=kernel_size, scale=scale)
    assert upsampler.conv.out_channels == 4 * scale**2
    out = upsampler(torch.randn(2, 8, 5, 6), (5 * scale, 6 * scale))
    cells = out.reshape(2, 4, 5, scale, 6, scale)
    assert torch.allclose(cells, cells[:, :, :, :1, :, :1].expand_as(cells))
    assert out.std() > 0


@pytest.mark.parametrize("scale", [2, 4])
def test_bilinear_additive_sums_groups_of_f_squared_channels_of_bilinear_upsampling(scale):
    """Wojna et al.: ``f**2`` times the pixels, ``f**2`` times fewer channels, whatever the skip's width."""
    upsampler = make("bilinear_additive", 2 * scale**2, 7, scale=scale)
    assert upsampler.out_channels == 2
    x = torch.randn(1, 2 * scale**2, 4, 5)
    size = (4 * scale + 1, 5 * scale)
    up = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    expected = torch.stack([up[:, : scale**2].sum(1), up[:, scale**2 :].sum(1)], dim=1)
    torch.testing.assert_close(upsampler(x, size), expected)
    assert sum(p.numel() for p in upsampler.parameters()) == 0


@pytest.mark.parametrize(("in_channels", "runs"), [(10, [(0, 5), (5, 10)]), (3, [(0, 3)])])
def test_bilinear_additive_rounds_the_group_count_down_when_f_squared_does_not_divide(in_channels, runs):
    """``C_in // 4`` near-equal runs at x2 (10 channels: two runs of 5), and at least one channel."""
    upsampler = make("bilinear_additive", in_channels, 4)
    x = torch.randn(1, in_channels, 4, 4)
    sums = upsampler(x, (4, 4))  # same size: interpolation is the identity
    torch.testing.assert_close(sums, torch.stack([x[:, a:b].sum(1) for a, b in runs], dim=1))


def test_bilinear_additive_in_the_unet_concatenates_its_narrower_output_and_refuses_add():
    model = UNet(1, 2, upsample="bilinear_additive", depth=2, base_channels=8, scale=4)
    assert [stage.upsample.out_channels for stage in model.decoder] == [32 // 16, 16 // 16]
    assert [stage.block[0].in_channels for stage in model.decoder] == [2 + 16, 1 + 8]
    assert model(torch.randn(1, 1, 37, 45)).shape == (1, 2, 37, 45)
    with pytest.raises(ValueError, match="gives 8 channels from 32, the skip has 16: model.net.fuse=add"):
        UNet(1, 2, upsample="bilinear_additive", depth=2, base_channels=8, fuse="add")


@pytest.mark.parametrize("scale", [2, 4])
def test_dysample_starts_as_bilinear_interpolation(scale):
    upsampler = make("dysample", 8, 8, scale=scale)
    identity_projection(upsampler)
    torch.nn.init.zeros_(upsampler.offset.weight)
    x = torch.randn(2, 8, 6, 7)
    for size in [(6 * scale, 7 * scale), (6 * scale + 1, 7 * scale + scale - 1)]:
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
    # Parameter-free channel summation instead of a projection, to C_in / 4 channels: the conv block
    # after the concatenation takes o / 2 inputs fewer (a 3x3 conv of o outputs).
    assert counts["nearest"] - counts["bilinear_additive"] == projection + sum(
        9 * o // 2 * o for _, o in widths
    )
    # DySample adds an offset predictor (2 * groups * 4 outputs per stage) to the projection.
    assert counts["dysample"] - counts["nearest"] == sum(i * 32 + 32 for i, _ in widths)
    # Resize-convolution: a 3x3 conv instead of the 1x1 projection.
    assert counts["resize_conv"] - counts["nearest"] == sum(8 * i * o for i, o in widths)
    # CARAFE adds a compressor to C_in // 4 channels and a 3x3 encoder of 4 * 5**2 kernels per stage.
    carafe_extra = sum((i * (i // 4) + i // 4) + (9 * (i // 4) * 100 + 100) for i, _ in widths)
    assert counts["carafe"] - counts["nearest"] == carafe_extra


def test_resize_conv_is_a_2x_resize_then_a_3x3_conv():
    upsampler = make("resize_conv", 3, 3)
    identity = torch.zeros(3, 3, 3, 3)
    identity[range(3), range(3), 1, 1] = 1.0  # the 3x3 conv passes each channel's centre through
    with torch.no_grad():
        upsampler.conv.weight.copy_(identity)
        upsampler.conv.bias.zero_()
    x = torch.randn(2, 3, 4, 5)
    doubled = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.equal(upsampler(x, (8, 10)), doubled)
    odd = upsampler(x, (9, 11))  # an odd skip: the last row and column repeat their neighbours
    assert torch.equal(odd[..., :8, :10], doubled)
    assert torch.equal(odd[..., 8, :], odd[..., 7, :]) and torch.equal(odd[..., :, 10], odd[..., :, 9])
    bilinear = make("resize_conv", 3, 3, mode="bilinear")
    bilinear.load_state_dict(upsampler.state_dict())
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(bilinear(x, (8, 10)), expected)
    with pytest.raises(ValueError, match="resize_conv mode must be one of nearest, bilinear"):
        make("resize_conv", mode="bicubic")


@pytest.mark.parametrize(("name", "options"), [("transposed", {}), ("transposed", {"kernel_size": 3})])
def test_transposed_makes_a_periodic_pattern_where_resize_conv_stays_flat(name, options):
    """Odena et al.'s point: on a constant input a stride-2 transposed conv paints a 2-periodic
    pattern (the checkerboard), while resize-then-conv is constant away from the border."""
    torch.manual_seed(0)
    x = torch.ones(1, 4, 6, 6)
    interior = make(name, 4, 4, **options)(x, (12, 12))[..., 2:-2, 2:-2]
    assert (interior[..., 0::2, 0::2] - interior[..., 1::2, 1::2]).abs().max() > 1e-3
    flat = make("resize_conv", 4, 4)(x, (12, 12))[..., 2:-2, 2:-2]
    torch.testing.assert_close(flat, flat[..., :1, :1].expand_as(flat))


@pytest.mark.parametrize(("kernel_size", "first_row"), [(2, 4), (3, 3), (4, 3)])
def test_transposed_kernel_size_paints_its_block_around_the_source_cell(kernel_size, first_row):
    """An impulse at input (2, 2) writes a k x k block covering its own 2x2 cell (rows 4, 5)."""
    upsampler = make("transposed", 1, 1, kernel_size=kernel_size)
    with torch.no_grad():
        upsampler.deconv.weight.fill_(1.0)
        upsampler.deconv.bias.zero_()
    for height in (5, 6):  # odd and even inputs double exactly
        x = torch.zeros(1, 1, height, height)
        x[..., 2, 2] = 1.0
        out = upsampler(x, (2 * height, 2 * height))
        rows = torch.nonzero(out[0, 0].sum(dim=1)).flatten().tolist()
        assert rows == list(range(first_row, first_row + kernel_size))
        assert out.shape[-2:] == (2 * height, 2 * height)


def test_transposed_default_is_the_original_2x2_and_keeps_old_checkpoints_loadable():
    default = make("transposed", 8, 4)
    assert default.deconv.weight.shape == (8, 4, 2, 2) and default.deconv.padding == (0, 0)
    old_state = {"deconv.weight": torch.randn(8, 4, 2, 2), "deconv.bias": torch.randn(4)}
    default.load_state_dict(old_state)  # the keys and shapes of checkpoints saved before kernel_size
    assert make("transposed", 8, 4, kernel_size=4).deconv.weight.shape == (8, 4, 4, 4)
    model = UNet(1, 2, upsample="transposed", depth=2, base_channels=4, upsample_options={"kernel_size": 3})
    assert all(stage.upsample.deconv.kernel_size == (3, 3) for stage in model.decoder)
    with pytest.raises(ValueError, match="transposed kernel_size must be an integer >= 2, got 1"):
        make("transposed", kernel_size=1)


def carafe_with_fixed_kernels(choices: dict[tuple[int, int], tuple[int, int]], k_up: int = 5):
    """A CARAFE whose kernels ignore the content: sub-pixel (i, j) takes only neighbour (dy, dx)."""
    upsampler = make("carafe", 3, 3, k_up=k_up)
    identity_projection(upsampler)
    with torch.no_grad():
        upsampler.encoder.weight.zero_()
        upsampler.encoder.bias.zero_()
        for (i, j), (dy, dx) in choices.items():
            neighbour = (dy + k_up // 2) * k_up + (dx + k_up // 2)
            # Pixel shuffle reads kernel entry c of sub-pixel (i, j) from channel 4c + 2i + j.
            upsampler.encoder.bias[4 * neighbour + 2 * i + j] = 1000.0
    return upsampler


def test_carafe_reassembles_the_predicted_neighbour_of_each_source_pixel():
    x = torch.randn(2, 3, 4, 5)
    centre = {(0, 0): (0, 0), (0, 1): (0, 0), (1, 0): (0, 0), (1, 1): (0, 0)}
    nearest = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.equal(carafe_with_fixed_kernels(centre)(x, (8, 10)), nearest)
    out = carafe_with_fixed_kernels({**centre, (0, 1): (0, 1), (1, 0): (-2, 0)})(x, (9, 11))
    right = F.pad(x[..., :, 1:], (0, 1))  # the right neighbour; zero past the border
    two_up = F.pad(x[..., :-2, :], (0, 0, 2, 0))
    assert torch.equal(out[..., 0:8:2, 0:10:2], x) and torch.equal(out[..., 1:8:2, 1:10:2], x)
    assert torch.equal(out[..., 0:8:2, 1:10:2], right)
    assert torch.equal(out[..., 1:8:2, 0:10:2], two_up)
    assert torch.equal(out[..., 8, :], out[..., 7, :])  # an odd skip's last row is replicated


@pytest.mark.parametrize("scale", [2, 4])
def test_carafe_starts_as_a_box_filter_of_the_nearest_upsampling(scale):
    upsampler = make("carafe", 8, 8, scale=scale)
    identity_projection(upsampler)
    torch.nn.init.zeros_(upsampler.encoder.weight)
    x = torch.randn(2, 8, 6, 7)
    box = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)
    expected = box.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    torch.testing.assert_close(upsampler(x, (6 * scale, 7 * scale)), expected, atol=1e-5, rtol=1e-5)
    kernels = make("carafe", 8, 8).kernels(x)  # the paper's near-zero init: almost uniform kernels
    assert kernels.shape == (2, 25, 12, 14)
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 12, 14))
    assert (kernels - 1 / 25).abs().max() < 1e-2


def test_carafe_kernels_follow_the_content():
    upsampler = make("carafe", 8, 8)
    with torch.no_grad():
        upsampler.encoder.weight.normal_(std=0.5)
    x = torch.randn(1, 8, 6, 6)
    kernels = upsampler.kernels(x)
    assert not torch.allclose(kernels, upsampler.kernels(x.flip(-1)).flip(-1), atol=1e-3)
    assert (kernels - 1 / 25).abs().max() > 0.05


@pytest.mark.parametrize(("in_channels", "compressed"), [(512, 64), (256, 64), (64, 16), (16, 4), (2, 1)])
def test_carafe_compresses_a_quarter_of_the_channels_up_to_the_papers_64(in_channels, compressed):
    assert make("carafe", in_channels, 8).compressor.out_channels == compressed
    upsampler = make("carafe", in_channels, 8, compressed_channels=32, k_up=3, k_enc=5)
    assert upsampler.compressor.out_channels == 32 and upsampler.encoder.weight.shape == (36, 32, 5, 5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k_up": 4}, "carafe k_up must be an odd integer >= 1, got 4"),
        ({"k_enc": 0}, "carafe k_enc must be an odd integer >= 1, got 0"),
        ({"compressed_channels": 0}, "carafe compressed_channels must be an integer >= 1, got 0"),
    ],
)
def test_carafe_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        make("carafe", **options)


@pytest.mark.parametrize("export_format", ["onnx", "torchscript"])
def test_method_options_export_with_parity_at_new_sizes(export_format, tmp_path):
    """The registry-wide export test covers default options; these change padding, modes and kernels."""
    stages = [
        ("transposed", 2, {"kernel_size": 3}),
        ("transposed", 2, {"kernel_size": 4}),
        ("resize_conv", 2, {"mode": "bilinear"}),
        ("carafe", 2, {"k_up": 3, "compressed_channels": 4}),
    ]
    export_with_parity(stages, export_format, tmp_path / "model")


@pytest.mark.parametrize(
    ("scale", "options", "padding", "output_padding"),
    [
        (2, {}, 0, 0),
        (4, {}, 0, 0),  # kernel f: non-overlapping
        (4, {"kernel_size": 8}, 2, 0),  # kernel 2f with padding f/2: overlapping
        (2, {"kernel_size": 3}, 1, 1),
        (4, {"kernel_size": 5, "padding": 1}, 1, 1),
        (4, {"kernel_size": 6, "output_padding": 2}, 2, 2),
    ],
)
def test_transposed_stride_is_the_scale_and_padding_keeps_every_size_exact(
    scale, options, padding, output_padding
):
    upsampler = make("transposed", 2, 2, scale=scale, **options)
    deconv = upsampler.deconv
    assert deconv.stride == (scale, scale) and deconv.kernel_size[0] == options.get("kernel_size", scale)
    assert deconv.padding == (padding, padding) and deconv.output_padding == (output_padding,) * 2
    for height in (3, 4):  # (h - 1)*s - 2p + k + output_padding = s*h, odd or even h
        assert upsampler.deconv(torch.randn(1, 2, height, height)).shape[-2:] == (scale * height,) * 2


@pytest.mark.parametrize(
    ("scale", "options", "message"),
    [
        (2, {"kernel_size": 3, "padding": 0}, r"= 2h \+ 1 rows \(17 from h=8\), not the 2h \(16\)"),
        (4, {"kernel_size": 8, "padding": 0}, r"= 4h \+ 4 rows \(36 from h=8\), not the 4h \(32\)"),
        (2, {"kernel_size": 4, "padding": 1, "output_padding": 1}, r"2h \+ 1 rows"),
        (2, {"padding": -1}, "transposed padding must be an integer >= 0, got -1"),
    ],
)
def test_transposed_padding_that_misses_the_skip_size_is_refused_with_the_sizes(scale, options, message):
    with pytest.raises(ValueError, match=message):
        make("transposed", scale=scale, **options)


@pytest.mark.parametrize(
    ("kernel_size", "stride", "cause"),
    [
        (2, 2, "no overlap"),
        (3, 2, "uneven overlap"),
        (4, 2, "even overlap"),
        (8, 4, "even overlap"),
        (2, 4, "gaps"),
    ],
)
def test_transposed_names_its_overlap_and_counts_where_contributions_meet(kernel_size, stride, cause):
    from unet.models.upsamplers.transposed import contribution_counts

    upsampler = make("transposed", 2, 2, scale=stride, kernel_size=kernel_size)
    assert upsampler.overlap.startswith(cause)
    interior = contribution_counts(kernel_size, stride, size=6)[stride:-stride, stride:-stride]
    uniform = bool((interior == interior[0, 0]).all())
    assert uniform == (kernel_size % stride == 0)
