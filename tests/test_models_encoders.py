"""Encoders (``UNet(encoder=...)``): every encoder with every upsampler, pretrained weights from local
files (this machine is offline: the files are random torchvision models saved here), input channels,
gradients, max-unpooling indices and exports.

Torchvision backbones are built once per module (resnet50 and vgg16_bn take a second each) and
handed to each U-Net as a copy; torch runs on one thread, as the two cores are shared.
"""

from __future__ import annotations

import copy
import hashlib
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import checkpointed_twin_gradients

from unet.models import ENCODERS, UPSAMPLERS, UNet
from unet.models.encoders import get_encoder
from unet.models.encoders.torchvision import BACKBONES, EncoderWeightsError
from unet.models.sizing import decoder_width_for, parameter_count
from unet.models.upsamplers.base import argmax_indices

BACKBONE_NAMES = sorted(BACKBONES)
ODD_SIZE = (37, 45)


# Many small backbones: one thread each is faster than two that wait for each other.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbones() -> dict[str, torch.nn.Module]:
    """Each torchvision encoder for 1 input channel, randomly initialised, built on first use."""

    class Cache(dict):
        def __missing__(self, name: str) -> torch.nn.Module:
            torch.manual_seed(0)
            self[name] = get_encoder(name)(1)
            return self[name]

    return Cache()


def build(monkeypatch, backbones, encoder: str, upsample: str = "bilinear", **options) -> UNet:
    """``UNet(1, 3, ...)`` whose torchvision encoder is a copy of the cached one."""
    if encoder in BACKBONES:
        cached = backbones[encoder]
        monkeypatch.setitem(ENCODERS, encoder, lambda in_channels, weights=None: copy.deepcopy(cached))
    return UNet(1, 3, upsample=upsample, encoder=encoder, **options)


def test_the_issue_encoders_are_registered_and_unknown_names_list_them():
    required = {"unet", "vgg16_bn", "resnet18", "resnet34", "resnet50", "convnext_tiny"}
    assert required | {"efficientnet_b0", "mobilenet_v3_large"} <= set(ENCODERS)
    with pytest.raises(ValueError, match="unknown encoder 'resnet9'; valid names: .*resnet18"):
        UNet(encoder="resnet9")


@pytest.mark.parametrize("upsample", sorted(UPSAMPLERS))
@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_and_upsampler_decode_to_the_input_size(monkeypatch, backbones, encoder, upsample):
    model = build(monkeypatch, backbones, encoder, upsample).eval()
    assert min(ODD_SIZE) >= model.min_size
    with torch.no_grad():
        logits = model(torch.randn(1, 1, *ODD_SIZE))
    assert logits.shape == (1, 3, *ODD_SIZE)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("encoder", "reductions", "final_stages"),
    [
        ("resnet34", (2, 4, 8, 16, 32), 1),
        ("vgg16_bn", (1, 2, 4, 8, 16, 32), 0),
        ("convnext_tiny", (4, 8, 16, 32), 2),
    ],
)
def test_one_decoder_stage_per_skip_then_stages_without_skip_to_full_resolution(
    monkeypatch, backbones, encoder, reductions, final_stages
):
    model = build(monkeypatch, backbones, encoder)
    assert model.encoder.reductions == reductions and model.min_size == 32
    assert len(model.decoder) == len(reductions) - 1 + final_stages
    with pytest.raises(ValueError, match=">= 32"):
        model.eval()(torch.randn(1, 1, 31, 64))


# Measured on the U-Net before encoders were pluggable: UNet(1, 3, method, depth=3, base_channels=8),
# seeded with 0, on a seeded (1, 1, 37, 45) input in eval mode: parameter count, a digest of the
# state dict's names and shapes, and the sum and absolute sum of the logits.
BEFORE_ENCODERS = {
    "bed_of_nails": (112987, "4ec56ecf3ec48f94", 339.120072, 1264.526424),
    "bilinear": (112987, "4ec56ecf3ec48f94", 300.355749, 1249.230670),
    "bilinear_additive": (104195, "a2dc9a4b767ef7a7", -1022.457008, 1072.059439),  # remeasured: f**2 groups
    "carafe": (139859, "937dd3aebc937bb8", 225.368599, 471.444533),
    "dysample": (116667, "d51ad552a09f0407", -650.987766, 650.987766),
    "maxunpool": (112987, "4ec56ecf3ec48f94", 339.711457, 1262.960343),
    "nearest": (112987, "4ec56ecf3ec48f94", 300.572515, 1249.268417),
    "pixelshuffle": (121219, "94fc9a5903120665", -301.646387, 464.173174),
    "resize_conv": (134491, "27c4a940369459a7", 559.015427, 988.242041),
    "transposed": (121051, "eee6976c8a7383ab", 989.897957, 989.897957),
}


def state_digest(model: torch.nn.Module) -> str:
    text = "\n".join(f"{name}:{tuple(tensor.shape)}" for name, tensor in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("upsample", sorted(BEFORE_ENCODERS))
def test_the_unet_encoder_is_the_network_of_before(upsample):
    """Same parameters under the same names (old checkpoints load) and, seeded, the same logits."""
    count, digest, total, absolute = BEFORE_ENCODERS[upsample]
    torch.manual_seed(0)
    model = UNet(1, 3, upsample=upsample, depth=3, base_channels=8).eval()
    assert model.encoder.mean is None and next(iter(model.state_dict())) == "encoder.0.0.weight"
    assert sum(p.numel() for p in model.parameters()) == count
    assert state_digest(model) == digest
    with torch.no_grad():
        logits = model(torch.randn(1, 1, *ODD_SIZE, generator=torch.Generator().manual_seed(1))).double()
    assert logits.sum().item() == pytest.approx(total, abs=1e-3)
    assert logits.abs().sum().item() == pytest.approx(absolute, rel=1e-6)
    assert UNet().state_dict().keys() == UNet(encoder="unet").state_dict().keys()
    assert parameter_count() == 7240258  # the default U-Net, measured before


def torchvision_features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """resnet18's five features computed with torchvision's own modules."""
    x = model.relu(model.bn1(model.conv1(x)))
    features = [x]
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(model.maxpool(x) if layer is model.layer1 else x)
        features.append(x)
    return features


def test_a_local_weights_file_gives_torchvision_features(resnet18_file):
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(resnet18_file, weights_only=True))
    loaded = get_encoder("resnet18")(3, weights=resnet18_file).eval()
    random = get_encoder("resnet18")(3).eval()
    x = torch.randn(2, 3, *ODD_SIZE)
    with torch.no_grad():
        expected = torchvision_features(reference.eval(), x)
        features, indices = loaded(x)
        random_features, _ = random(x)
    assert indices == [None] * 4  # no 2x2 max-pool in a ResNet
    assert [f.shape[1] for f in features] == list(loaded.channels)
    for feature, want, other in zip(features, expected, random_features, strict=True):
        torch.testing.assert_close(feature, want)
        assert not torch.allclose(other, want)
    assert loaded.mean == (0.485, 0.456, 0.406) and loaded.std == (0.229, 0.224, 0.225)


def test_the_unet_loads_the_weights_file_into_its_encoder(resnet18_file):
    state = torch.load(resnet18_file, weights_only=True)
    model = UNet(3, 2, encoder="resnet18", encoder_weights=str(resnet18_file))
    torch.testing.assert_close(model.encoder.stages[4][0][0].conv1.weight, state["layer4.0.conv1.weight"])
    torch.testing.assert_close(model.encoder.stages[0][1].running_var, state["bn1.running_var"])
    # A backbone's state dict without the classifier head loads too.
    headless = resnet18_file.with_name("headless.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, headless)
    get_encoder("resnet18")(3, weights=headless)
    # So does a classifier fine-tuned to other classes: its head is not the encoder's.
    finetuned = resnet18_file.with_name("finetuned.pth")
    torch.save({**state, "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, finetuned)
    get_encoder("resnet18")(3, weights=finetuned)


def test_gray_input_gives_the_rgb_network_on_the_repeated_image(resnet18_file):
    """1 channel: the first conv's RGB kernels summed; so a gray image is exactly its RGB repetition."""
    rgb = get_encoder("resnet18")(3, weights=resnet18_file).eval()
    gray = get_encoder("resnet18")(1, weights=resnet18_file).eval()
    image = torch.randn(2, 1, *ODD_SIZE)
    with torch.no_grad():
        for ours, theirs in zip(gray(image)[0], rgb(image.repeat(1, 3, 1, 1))[0], strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert gray.mean == pytest.approx((0.449,)) and gray.std == pytest.approx((0.226,))


def test_more_channels_repeat_the_rgb_kernels_scaled_by_3_over_c(resnet18_file):
    kernels = torch.load(resnet18_file, weights_only=True)["conv1.weight"]
    four = get_encoder("resnet18")(4, weights=resnet18_file)
    first_conv = four.stages[0][0]
    assert first_conv.in_channels == 4
    torch.testing.assert_close(first_conv.weight, kernels[:, [0, 1, 2, 0]] * 0.75)
    assert four.mean == (0.485, 0.456, 0.406, 0.485)


def test_wrong_weights_files_are_refused_with_the_reason(resnet18_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth does not exist"):
        get_encoder("resnet18")(3, weights=tmp_path / "nowhere.pth")
    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), other)
    with pytest.raises(
        EncoderWeightsError, match=r"does not fit the backbone: missing none; unexpected layer1\.2\."
    ):
        get_encoder("resnet18")(3, weights=other)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in torch.load(resnet18_file).items() if not k.startswith("layer4.")}, partial)
    with pytest.raises(EncoderWeightsError, match=r"missing layer4\.0\.bn1\."):
        get_encoder("resnet18")(3, weights=partial)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(EncoderWeightsError, match="does not hold a state dict"):
        get_encoder("resnet18")(3, weights=tensor)
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(resnet18_file.read_bytes()[:1000])
    with pytest.raises(EncoderWeightsError, match=r"damaged\.pth is not a readable torch\.save file \("):
        get_encoder("resnet18")(3, weights=damaged)
    with pytest.raises(ValueError, match="the unet encoder has no pretrained weights"):
        UNet(encoder_weights="imagenet")


def test_imagenet_weights_offline_say_which_file_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the weights must be downloaded

    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    url = torchvision.models.ResNet34_Weights.DEFAULT.url
    with pytest.raises(EncoderWeightsError) as error:
        UNet(3, 2, encoder="resnet34", encoder_weights="imagenet")
    assert str(error.value).startswith(
        f"could not download the imagenet weights of resnet34 (offline?): download {url} on a machine with "
        "internet and pass its path: model.encoder_weights=/path/to/resnet34-"
    )


@pytest.mark.parametrize("upsample", ["bilinear", "maxunpool"])
@pytest.mark.parametrize("encoder", BACKBONE_NAMES)
def test_gradients_reach_every_trainable_parameter(monkeypatch, backbones, encoder, upsample):
    model = build(monkeypatch, backbones, encoder, upsample).train()
    for module in model.modules():  # EfficientNet drops whole blocks at random in training
        if isinstance(module, torchvision.ops.StochasticDepth):
            module.eval()
    model(torch.randn(2, 1, *ODD_SIZE)).square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_argmax_indices_point_at_each_cells_maximum():
    reference = torch.randn(2, 3, 7, 9)
    for ceil_mode, cells in ((True, (4, 5)), (False, (3, 4))):
        indices = argmax_indices(reference, 3, ceil_mode)
        assert indices.shape == (2, 3, *cells)
        rows, cols = indices // 9, indices % 9
        assert torch.equal(rows // 2, torch.arange(cells[0])[:, None].expand_as(rows))
        assert torch.equal(cols // 2, torch.arange(cells[1]).expand_as(cols))
        maxima = F.max_pool2d(reference, 2, ceil_mode=ceil_mode)
        assert torch.equal(reference.flatten(2).gather(2, indices.flatten(2)), maxima.flatten(2))
    broadcast = argmax_indices(reference[:, :1], 5)
    assert broadcast.shape == (2, 5, 3, 4) and torch.equal(broadcast[:, 4], broadcast[:, 0])


@pytest.mark.parametrize("size", [(7, 9), (8, 9), (7, 10), (8, 10), (1, 3)])
def test_ceil_mode_argmax_indices_are_a_ceil_mode_pools(size):
    # Computed without a branch on the size's parity (torch.export keeps the size dynamic), yet equal.
    reference = torch.randn(2, 3, *size)
    _, expected = F.max_pool2d(reference, 2, stride=2, ceil_mode=True, return_indices=True)
    assert torch.equal(argmax_indices(reference, 3, ceil_mode=True), expected)


def record_upsampler_indices(model: UNet) -> list[torch.Tensor]:
    """The indices each decoder stage's upsampler receives, in decoding order."""
    received = []
    for stage in model.decoder:
        stage.upsample.register_forward_hook(lambda module, inputs, output: received.append(inputs[2]))
    return received


def test_maxunpool_without_encoder_pools_takes_the_skips_argmax(monkeypatch, backbones):
    """resnet: every skip's 2x2 argmax (rounded up, as its strided convs), then the image's above stride 2."""
    model = build(monkeypatch, backbones, "resnet18", "maxunpool").eval()
    received = record_upsampler_indices(model)
    image = torch.randn(1, 1, *ODD_SIZE)
    with torch.no_grad():
        features, _ = model.encoder(image)
        model(image)
    references = [*features[-2::-1], image]
    for indices, reference, stage in zip(received, references, model.decoder, strict=True):
        torch.testing.assert_close(indices, argmax_indices(reference, stage.upsample.out_channels, True))


def test_vgg16_bn_hands_out_its_max_pool_indices_at_every_level(monkeypatch, backbones):
    """SegNet: the decoder unpools with the indices of the encoder's own five 2x2 max-pools."""
    model = build(monkeypatch, backbones, "vgg16_bn", "maxunpool").eval()
    received = record_upsampler_indices(model)
    image = torch.randn(1, 1, *ODD_SIZE)
    with torch.no_grad():
        features, indices = model.encoder(image, return_indices=True)
        model(image)
    assert model.encoder.pools == (True,) * 5 and len(indices) == 5
    for level, level_indices in enumerate(indices):
        _, expected = F.max_pool2d(features[level], 2, 2, return_indices=True)
        assert torch.equal(level_indices, expected)
    for got, expected in zip(received, indices[::-1], strict=True):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("encoder", "upsample"),
    [
        ("resnet18", "transposed"),
        ("vgg16_bn", "maxunpool"),
        ("convnext_tiny", "maxunpool"),
        ("mobilenet_v3_large", "dysample"),
    ],
)
def test_torchscript_export_matches_pytorch_at_a_new_size(
    monkeypatch, backbones, encoder, upsample, tmp_path
):
    """One encoder per family: ResNet (sizes rounded up), VGG (pools), ConvNeXt (stride 4), MobileNet; one
    block per stage (:func:`one_block_per_stage`), as tracing takes its time per block."""
    from unet.export.exporters import EXPORTERS

    model = build_slim(monkeypatch, backbones, encoder, upsample).eval()
    metadata = {"in_channels": 1, "min_size": model.min_size}
    EXPORTERS["torchscript"](model, tmp_path / "model.pt", metadata, 1e-4)
    assert metadata["check_max_abs_diff"] <= 1e-4


# The residual blocks that repeat within a torchvision stage: the first may change the size and width, the
# others keep them, so the first alone has the stage's reduction and channels.
REPEATED_BLOCKS = (
    torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck, torchvision.models.convnext.CNBlock,
)  # fmt: skip


def one_block_per_stage(module: torch.nn.Module, first_stage_only: bool = False) -> torch.nn.Module:
    """``module`` with each run of repeated residual blocks cut to its first: the same strides, widths and
    rounding of odd sizes, a graph a fraction of the size for the exporters (which take seconds per block).

    ``first_stage_only``: the later runs emptied too, for a backbone whose stride-2 steps lie between its
    stages (ConvNeXt's downsampling layers), so its blocks are exported once.
    """
    runs = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Sequential
        and len(child) > 0
        and all(isinstance(block, REPEATED_BLOCKS) for block in child)
    ]
    for index, (parent, name, run) in enumerate(runs):
        setattr(parent, name, torch.nn.Sequential(*run[: 0 if first_stage_only and index else 1]))
    return module


def build_slim(monkeypatch, backbones, encoder: str, upsample: str, first_stage_only: bool = False) -> UNet:
    """``build`` on a copy of the cached backbone with one block per stage (:func:`one_block_per_stage`)."""
    slim = one_block_per_stage(copy.deepcopy(backbones[encoder]), first_stage_only)
    assert (slim.channels, slim.reductions) == (backbones[encoder].channels, backbones[encoder].reductions)
    monkeypatch.setitem(ENCODERS, encoder, lambda in_channels, weights=None: copy.deepcopy(slim))
    return UNet(1, 3, upsample=upsample, encoder=encoder)


def test_onnx_export_matches_pytorch_at_a_new_size(monkeypatch, backbones, tmp_path):
    """The ConvNeXt backbone, whose decoder has the most to keep dynamic (stages without skip, fallback
    indices, odd sizes rounded down); its residual blocks once (the first stage's first), as ONNX export
    takes seconds per block and the blocks keep their input's size."""
    from unet.export.exporters import EXPORTERS

    model = build_slim(monkeypatch, backbones, "convnext_tiny", "maxunpool", first_stage_only=True).eval()
    metadata = {"in_channels": 1, "min_size": model.min_size}
    EXPORTERS["onnx"](model, tmp_path / "model.onnx", metadata, 1e-4)
    assert metadata["check_max_abs_diff"] <= 1e-4


def test_decoder_width_for_sizes_a_backbone_unet(monkeypatch, backbones):
    options = {"in_channels": 1, "num_classes": 3, "upsample": "bilinear", "encoder": "resnet18"}
    cached = backbones["resnet18"]
    monkeypatch.setitem(ENCODERS, "resnet18", lambda in_channels, weights=None: copy.deepcopy(cached))
    target = parameter_count(**options, decoder_width=0.6)
    width = decoder_width_for(target, **options)
    assert abs(parameter_count(**options, decoder_width=width) - target) <= 0.02 * target


def test_gradient_checkpointing_of_a_backbone_keeps_outputs_gradients_and_statistics(monkeypatch, backbones):
    checkpointed_twin_gradients(
        build(monkeypatch, backbones, "resnet18").train(), torch.randn(2, 1, *ODD_SIZE)
    )


def test_maxunpool_on_a_backbone_that_rounds_up_exports_to_pt2_with_dynamic_sizes(
    monkeypatch, backbones, tmp_path
):
    # ResNets round odd sizes up; their fallback indices once made torch.export specialise the size.
    # One block per stage keeps the rounding (the first block of a stage has its stride).
    from unet.export.exporters import EXPORTERS
    from unet.models.networks import min_input_size

    model = build_slim(monkeypatch, backbones, "resnet18", "maxunpool").eval()
    metadata = {"in_channels": 1, "num_classes": 3, "min_size": min_input_size(model)}
    EXPORTERS["pt2"](model, tmp_path / "model.pt2", metadata, 1e-4)  # checked at a size of other parities
    assert metadata["check_max_abs_diff"] <= 1e-4
