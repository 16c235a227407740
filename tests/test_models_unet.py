"""The U-Net and every registered upsampler: shapes at odd sizes, gradients, determinism, errors."""

import pytest
import torch
import torch.nn.functional as F

from unet.models import UPSAMPLERS, UNet
from unet.models.batchnorm_folding import fold_batch_norms
from unet.utils.errors import ConfigError

METHODS = sorted(UPSAMPLERS)


def tiny_unet(upsample: str, **kwargs) -> UNet:
    options = {"in_channels": 3, "num_classes": 4, "depth": 3, "base_channels": 8, **kwargs}
    return UNet(upsample=upsample, **options)


def test_required_methods_are_registered():
    required = {
        "nearest",
        "bilinear",
        "maxunpool",
        "transposed",
        "bed_of_nails",
        "pixelshuffle",
        "bilinear_additive",
    }
    assert required <= set(UPSAMPLERS)
    assert {"dysample", "carafe"} & set(UPSAMPLERS)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", [(97, 131), (64, 64), (8, 9)])
def test_output_has_input_size_at_any_size(method, size):
    model = tiny_unet(method).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *size))
    assert logits.shape == (1, 4, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("method", METHODS)
def test_default_unet_maps_odd_size_to_logits(method):
    """Odd sizes at several of its four levels (35: 17, 8, ...; 37: 18, 9, ...), at a fraction of a large
    image's cost for its 7.2M parameters."""
    model = UNet(in_channels=3, num_classes=5, upsample=method).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 35, 37)).shape == (1, 5, 35, 37)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_every_parameter(method):
    model = tiny_unet(method)
    logits = model(torch.randn(2, 3, 33, 47))
    F.cross_entropy(logits, torch.randint(0, 4, (2, 33, 47))).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("method", METHODS)
def test_eval_output_is_deterministic(method):
    model = tiny_unet(method).eval()
    x = torch.randn(2, 3, 45, 37)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="unknown upsampling method 'bicubic'") as error:
        UNet(upsample="bicubic")
    for name in UPSAMPLERS:
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("fuse", "stack", "unknown fuse"),
        ("norm", "layer", "unknown norm"),
        ("activation", "tanhh", "unknown activation"),
    ],
)
def test_unknown_block_option_is_rejected(option, value, message):
    with pytest.raises(ValueError, match=message):
        UNet(**{option: value})


def test_too_small_input_names_the_minimum():
    model = UNet(depth=4).eval()
    with pytest.raises(ValueError, match=">= 16"):
        model(torch.randn(1, 1, 15, 64))


@pytest.mark.parametrize("fuse", ["concat", "add", "none"])
@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_fuse_and_norm_options_build_working_models(fuse, norm):
    model = tiny_unet("bilinear", fuse=fuse, norm=norm, activation="gelu", dropout=0.1).eval()
    assert model(torch.randn(2, 3, 20, 24)).shape == (2, 4, 20, 24)


def test_fuse_changes_decoder_width():
    concat, add = tiny_unet("nearest", fuse="concat"), tiny_unet("nearest", fuse="add")
    assert sum(p.numel() for p in concat.parameters()) > sum(p.numel() for p in add.parameters())


def test_encoder_saves_pool_indices_only_for_methods_that_need_them():
    assert tiny_unet("maxunpool").save_indices
    assert not tiny_unet("bilinear").save_indices


def test_upsample_options_reach_the_method():
    model = tiny_unet("bed_of_nails", upsample_options={"corner": "bottom_right"})
    assert all(stage.upsample.corner == "bottom_right" for stage in model.decoder)
    with pytest.raises(TypeError):
        tiny_unet("nearest", upsample_options={"corner": "top_left"})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("decoder_width", [0.6, 1.7])
def test_decoder_width_scales_the_decoder_for_every_method(method, decoder_width):
    model = tiny_unet(method, decoder_width=decoder_width).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 29, 35)).shape == (1, 4, 29, 35)
    narrow, wide = tiny_unet(method, decoder_width=0.6), tiny_unet(method, decoder_width=1.7)
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())
    encoder = [p.numel() for p in tiny_unet(method).encoder.parameters()]
    assert [p.numel() for p in wide.encoder.parameters()] == encoder


@pytest.mark.parametrize("method", ["bilinear", "maxunpool", "transposed"])
def test_batch_norm_folding_keeps_the_outputs_and_leaves_the_model_alone(method):
    torch.manual_seed(0)
    model = UNet(1, 3, upsample=method, depth=2, base_channels=8)
    model.train()
    for _ in range(3):  # running statistics away from their initial values
        model(torch.randn(4, 1, 32, 32) * 2 + 1)
    model.eval()
    image = torch.randn(2, 1, 32, 32)
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(image), model(image), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("scale", "reductions"), [(4, (1, 4, 16)), ([4, 2], (1, 4, 8)), ([2, 3], (1, 2, 6))])
def test_scale_sets_each_levels_pooling_and_the_output_keeps_any_size(scale, reductions):
    model = UNet(1, 2, depth=2, base_channels=4, scale=scale, upsample="maxunpool").eval()
    assert model.encoder.reductions == reductions and model.min_size == reductions[-1]
    assert [stage.upsample.scale for stage in model.decoder] == [
        reductions[2] // reductions[1],
        reductions[1] // reductions[0],
    ]
    for size in [(reductions[-1], reductions[-1]), (37, 29)]:
        assert model(torch.randn(1, 1, *size)).shape == (1, 2, *size)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"scale": [4, 2]},
            r"model.net.scale must be an integer >= 2 or a list of 3 \(depth\) of them, got \[4, 2\]",
        ),
        ({"scale": 1}, "model.net.scale must be an integer >= 2"),
        (
            {"encoder": "resnet18", "scale": 4},
            r"model.encoder=resnet18 keeps its own strides \(2, 4, 8, 16, 32\).*"
            "model.net.scale=4 would skip a stage",
        ),
        ({"upsample_options": {"scale": 4}}, "the upsampling factor is model.net.scale"),
    ],
)
def test_a_scale_the_network_cannot_have_is_refused_in_one_line(options, message):
    with pytest.raises(ConfigError, match=message):
        UNet(1, 2, depth=3, base_channels=4, **options)


def test_a_backbone_takes_the_scale_of_its_own_strides():
    model = UNet(1, 2, encoder="resnet18", scale=[2, 2, 2, 2]).eval()
    assert model(torch.randn(1, 1, 33, 35)).shape == (1, 2, 33, 35)
