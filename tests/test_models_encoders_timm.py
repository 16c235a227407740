"""timm encoders (``model.encoder=timm-<name>``, the ``timm`` extra): every upsampler at odd sizes, local
weights files (this machine is offline: the files are random timm models saved here), input channels,
gradients, checkpointing, errors, and the training config.

ConvNeXt-atto is the smallest of the usual timm backbones (3.7M parameters) and rounds odd sizes down
(a patchify stem); ResNet-18 checks the other rounding. Torch runs on one thread: the two cores are shared.
"""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import TINY_RUN, checkpointed_twin_gradients

from unet.models import UPSAMPLERS, UNet
from unet.models.encoders import get_encoder
from unet.models.encoders.torchvision import EncoderWeightsError
from unet.utils.extras import MissingExtraError

timm = pytest.importorskip("timm", reason='timm encoders need the timm extra: pip install "unet[timm]"')

MODEL = "convnext_atto"
ODD_SIZE = (37, 45)


# Many small backbones: one thread each is faster than two that wait for each other.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A random ConvNeXt-atto classifier's state dict, as a local weights file."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("timm") / "convnext_atto.pth"
    torch.save(timm.create_model(MODEL).state_dict(), path)
    return path


def classifier_features(classifier: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """ConvNeXt's four stage outputs computed with timm's classifier modules."""
    features, x = [], classifier.stem(x)
    for stage in classifier.stages:
        x = stage(x)
        features.append(x)
    return features


def test_timm_names_resolve_and_unknown_names_say_what_to_do():
    encoder = get_encoder(f"timm-{MODEL}")(3)
    assert encoder.channels == (40, 80, 160, 320) and encoder.reductions == (4, 8, 16, 32)
    assert encoder.pools == (False,) * 3 and encoder.decoder_channels == (40, 80, 160)
    with pytest.raises(
        ValueError, match=r"unknown encoder 'resnet9'; valid names: .*; or timm-<name>: any timm"
    ):
        UNet(encoder="resnet9")
    with pytest.raises(ValueError) as error:
        UNet(encoder="timm-resnet9000")
    assert str(error.value) == (
        "model.encoder=timm-resnet9000: timm "
        f"{timm.__version__} has no model 'resnet9000'; list them with "
        "python -c \"import timm; print(timm.list_models('*resnet9000*'))\""
    )


def test_without_timm_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # what `import timm` finds when it is not installed
    with pytest.raises(
        MissingExtraError, match=r'^model.encoder=timm-resnet18 needs timm, .*pip install "unet\[timm\]"'
    ):
        UNet(encoder="timm-resnet18")


def test_a_network_whose_strides_do_not_double_is_refused():
    with pytest.raises(
        ValueError, match=r"^model.encoder=timm-vit_tiny_patch16_224: its features' strides \(16, 16"
    ):
        UNet(encoder="timm-vit_tiny_patch16_224")


@pytest.mark.parametrize("upsample", sorted(UPSAMPLERS))
def test_every_upsampler_decodes_odd_sizes_to_the_input_size(upsample):
    model = UNet(1, 3, upsample=upsample, encoder=f"timm-{MODEL}").eval()
    assert model.min_size == 32 and len(model.decoder) == 3 + 2  # stride 4: two stages without skip
    with torch.no_grad():
        logits = model(torch.randn(1, 1, *ODD_SIZE))
    assert logits.shape == (1, 3, *ODD_SIZE)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("name", "ceil_mode"), [("resnet18", True), (MODEL, False), ("tf_efficientnet_b0", True)]
)
def test_the_rounding_of_odd_sizes_is_the_networks(name, ceil_mode):
    """Padded strided convs round up, a patchify stem down; max-unpooling's indices need the right one.
    TensorFlow's "same" padding (timm's ``Conv2dSame``) stays through the first conv's gray adaptation."""
    model = UNet(1, 2, upsample="maxunpool", encoder=f"timm-{name}").eval()
    assert model.encoder.ceil_mode is ceil_mode
    image = torch.randn(1, 1, *ODD_SIZE)
    with torch.no_grad():
        features, _ = model.encoder(image)
        assert model(image).shape == (1, 2, *ODD_SIZE)
    divide = (lambda a, b: -(-a // b)) if ceil_mode else (lambda a, b: a // b)
    for feature, stride in zip(features, model.encoder.reductions, strict=True):
        assert feature.shape[-2:] == (divide(ODD_SIZE[0], stride), divide(ODD_SIZE[1], stride))


def test_a_classifier_weights_file_gives_the_classifiers_features(classifier_file):
    reference = timm.create_model(MODEL).eval()
    reference.load_state_dict(torch.load(classifier_file, weights_only=True))
    loaded = get_encoder(f"timm-{MODEL}")(3, weights=classifier_file).eval()
    random = get_encoder(f"timm-{MODEL}")(3).eval()
    x = torch.randn(2, 3, *ODD_SIZE)
    with torch.no_grad():
        expected = classifier_features(reference, x)
        features, indices = loaded(x)
        random_features, _ = random(x)
    assert indices == [None] * 3
    for feature, want, other in zip(features, expected, random_features, strict=True):
        torch.testing.assert_close(feature, want)
        assert not torch.allclose(other, want)
    assert loaded.mean == pytest.approx((0.485, 0.456, 0.406)) and loaded.std == pytest.approx(
        (0.229, 0.224, 0.225)
    )
    # The U-Net's outputs are the loaded encoder's: same seed for the decoder, other outputs.
    image = torch.randn(1, 3, *ODD_SIZE)
    outputs = []
    for weights in (None, classifier_file):
        torch.manual_seed(0)
        with torch.no_grad():
            outputs.append(UNet(3, 2, encoder=f"timm-{MODEL}", encoder_weights=weights).eval()(image))
    assert not torch.allclose(*outputs)


def test_a_features_network_weights_file_and_a_finetuned_classifier_load(classifier_file, tmp_path):
    torch.manual_seed(2)
    features_net = timm.create_model(MODEL, features_only=True).eval()
    features_file = tmp_path / "features.pth"
    torch.save(features_net.state_dict(), features_file)  # its names differ: stages_0, not stages.0
    loaded = get_encoder(f"timm-{MODEL}")(3, weights=features_file).eval()
    x = torch.randn(1, 3, *ODD_SIZE)
    with torch.no_grad():
        for ours, theirs in zip(loaded(x)[0], features_net(x), strict=True):
            torch.testing.assert_close(ours, theirs)
    state = torch.load(classifier_file, weights_only=True)
    finetuned = tmp_path / "finetuned.pth"  # a classifier of 10 classes: its head is not the encoder's
    torch.save({**state, "head.fc.weight": torch.zeros(10, 320), "head.fc.bias": torch.zeros(10)}, finetuned)
    get_encoder(f"timm-{MODEL}")(3, weights=finetuned)


def test_wrong_weights_files_are_refused_with_the_reason(classifier_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors does not exist"):
        get_encoder(f"timm-{MODEL}")(3, weights=tmp_path / "nowhere.safetensors")
    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), other)
    with pytest.raises(
        EncoderWeightsError,
        match=r"resnet18.pth does not fit the backbone: missing stages\.0\..*; unexpected bn1\.",
    ):
        get_encoder(f"timm-{MODEL}")(3, weights=other)
    state = torch.load(classifier_file, weights_only=True)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("stages.3.")}, partial)
    with pytest.raises(EncoderWeightsError, match=r"does not fit the backbone: missing stages\.3\."):
        get_encoder(f"timm-{MODEL}")(3, weights=partial)


def test_a_safetensors_file_loads(classifier_file, tmp_path):
    """timm publishes its weights as model.safetensors: what the offline message says to download."""
    from safetensors.torch import save_file

    state = torch.load(classifier_file, weights_only=True)
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    encoder = get_encoder(f"timm-{MODEL}")(3, weights=path)
    torch.testing.assert_close(
        encoder.model.stages_3.blocks[0].conv_dw.weight, state["stages.3.blocks.0.conv_dw.weight"]
    )


def test_imagenet_weights_offline_say_which_file_to_fetch(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub.constants", reason="timm downloads through huggingface_hub")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1: no connection attempts
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: the weights must be downloaded
    with pytest.raises(EncoderWeightsError) as error:
        UNet(3, 2, encoder=f"timm-{MODEL}", encoder_weights="imagenet")
    assert str(error.value).startswith(
        f"could not download the imagenet weights of timm-{MODEL} (offline?): download "
        f"https://huggingface.co/timm/{MODEL}.d2_in1k/resolve/main/model.safetensors on a machine with internet "
        "and pass its path: model.encoder_weights=/path/to/model.safetensors ("
    )
    assert "\n" not in str(error.value)


def test_gray_input_gives_the_rgb_network_on_the_repeated_image(classifier_file):
    rgb = get_encoder(f"timm-{MODEL}")(3, weights=classifier_file).eval()
    gray = get_encoder(f"timm-{MODEL}")(1, weights=classifier_file).eval()
    image = torch.randn(2, 1, *ODD_SIZE)
    with torch.no_grad():
        for ours, theirs in zip(gray(image)[0], rgb(image.repeat(1, 3, 1, 1))[0], strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert gray.mean == pytest.approx((0.449,)) and gray.std == pytest.approx((0.226,))
    kernels = torch.load(classifier_file, weights_only=True)["stem.0.weight"]
    four = get_encoder(f"timm-{MODEL}")(4, weights=classifier_file)
    torch.testing.assert_close(four.model.stem_0.weight, kernels[:, [0, 1, 2, 0]] * 0.75)
    assert four.mean == pytest.approx((0.485, 0.456, 0.406, 0.485))


@pytest.mark.parametrize("upsample", ["bilinear", "maxunpool"])
def test_gradients_reach_every_parameter_and_checkpointing_keeps_them(upsample):
    plain = UNet(1, 3, upsample=upsample, encoder=f"timm-{MODEL}").train()
    for name, grad in checkpointed_twin_gradients(plain, torch.randn(2, 1, *ODD_SIZE)):
        assert grad is not None and grad.abs().sum() > 0, name


def test_the_training_config_builds_a_module_on_a_timm_encoder(compose_config):
    from unet.training.run import build_datamodule, build_module

    cfg = compose_config("train", *TINY_RUN, "model.encoder=timm-resnet18")
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg.model, datamodule)
    assert module.network_config["encoder"] == "timm-resnet18"
    assert type(module.encoder).__name__ == "TimmEncoder"
    with torch.no_grad():
        logits = module.net.eval()(torch.randn(1, datamodule.in_channels, 33, 35))
    assert logits.shape == (1, datamodule.num_classes, 33, 35)
