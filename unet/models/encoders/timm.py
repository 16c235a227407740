"""Any timm model with ``features_only`` as a U-Net encoder: ``model.encoder=timm-<name>``, e.g.
``timm-resnet18``, ``timm-efficientnet_b0``, ``timm-convnext_atto.d2_in1k`` (a pretrained tag after the dot).

timm is an extra (``pip install "unet[timm]"``): its models form the encoder family ``timm-``,
resolved by name when one is asked for, so importing ``unet.models`` neither needs nor imports timm.
Weights and input channels work as for the torchvision backbones (``unet.models.encoders.torchvision``):
the network is built for RGB, its weights loaded, then the first convolution adapted.

The features are timm's (``feature_info``: their channels and strides). Their strides must double from
one to the next, as the decoder's stages do; how the network rounds odd sizes (``ceil_mode``) is
measured on a probe image when it is built, since timm's models differ (padded strided convs round
up, a ConvNeXt's patchify stem down), and the decoder must round alike for max-unpooling's indices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from unet.models.encoders.base import Encoder, EncoderBuilder, register_encoder_family
from unet.models.encoders.torchvision import (
    EncoderWeightsError,
    adapt_first_conv,
    adapt_statistics,
    backbone_decoder_channels,
    load_backbone_weights,
    read_state_dict,
)
from unet.utils.errors import ConfigError
from unet.utils.extras import MissingExtraError, install_hint

PREFIX = "timm-"
INSTALL = install_hint("timm")


def import_timm(encoder: str) -> ModuleType:
    """timm, or a one-line error saying how to install it."""
    try:
        import timm
    except ImportError as error:
        raise MissingExtraError(
            f"model.encoder={encoder} needs timm, which is not installed: {INSTALL} ({error})"
        ) from None
    return timm


@register_encoder_family(PREFIX, f"any timm model with features_only, e.g. timm-resnet18 ({INSTALL})")
def timm_encoder(model_name: str) -> EncoderBuilder:
    """The builder of ``timm-<model_name>``; an unknown name says how to find timm's names."""
    timm = import_timm(PREFIX + model_name)
    if not timm.is_model(model_name):
        raise ConfigError(
            f"model.encoder={PREFIX}{model_name}: timm {timm.__version__} has no model {model_name!r}; list "
            f"them with python -c \"import timm; print(timm.list_models('*{model_name.partition('.')[0]}*'))\""
        )
    return partial(TimmEncoder, model_name)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, or a ``.safetensors`` file (how timm's weights are published)."""
    if Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return read_state_dict(path)  # which also says that a missing file does not exist
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except SafetensorError as error:
        raise EncoderWeightsError(f"{path} is not a readable safetensors file ({error})") from None


def described(error: BaseException) -> str:
    """``Type: first line of the message``: a library's error within a one-line message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def download_address(timm: ModuleType, model_name: str) -> str:
    """Where timm downloads ``model_name``'s pretrained weights from (the Hugging Face hub or a URL)."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is not None and cfg.hf_hub_id:
        return f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{cfg.hf_hub_filename or 'model.safetensors'}"
    return (cfg.url if cfg is not None else None) or ""


def features_model(timm: ModuleType, model_name: str, weights: str | os.PathLike | None) -> nn.Module:
    """timm's RGB ``features_only`` network of ``model_name`` with ``weights`` (see :class:`TimmEncoder`)."""
    encoder = PREFIX + model_name
    create = partial(timm.create_model, model_name, features_only=True)
    try:
        model = create()
    except (RuntimeError, AssertionError, TypeError) as error:  # no features_only, a wrong pretrained tag
        raise ConfigError(
            f"model.encoder={encoder}: timm cannot build it as a features_only network ({error})"
        ) from None
    if weights is None:
        return model
    if weights == "imagenet":
        address = download_address(timm, model_name)
        if not address:
            raise EncoderWeightsError(
                f"timm has no pretrained weights for {model_name}: set model.encoder_weights=null or a state dict file"
            )
        try:
            return create(pretrained=True)
        # No connection (huggingface_hub's LocalEntryNotFoundError, URLError: OSErrors), a bad download.
        except (OSError, RuntimeError) as error:
            raise EncoderWeightsError(
                f"could not download the imagenet weights of {encoder} (offline?): download {address} on a "
                f"machine with internet and pass its path: model.encoder_weights=/path/to/{Path(address).name} "
                f"({described(error)})"
            ) from error
    state, source = read_weights(weights), str(weights)
    if set(state) <= set(model.state_dict()):  # the features network's own state dict
        load_backbone_weights(model, state, (name for name, _ in model.named_children()), source)
        return model
    # A classifier's: checked against the classifier (its head may be anything), then turned into the
    # features network's by timm as it does its own pretrained weights.
    classifier = timm.create_model(model_name)
    heads = classifier.pretrained_cfg.get("classifier") or ()
    heads = {name.partition(".")[0] for name in ((heads,) if isinstance(heads, str) else heads)}
    used = (name for name, _ in classifier.named_children() if name not in heads)
    load_backbone_weights(classifier, state, used, source)
    return create(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})


def rounds_up(model: nn.Module, channels: tuple[int, ...], reductions: tuple[int, ...], encoder: str) -> bool:
    """Whether ``model`` rounds odd sizes up (``ceil(H / r)`` at stride ``r``) rather than down, at every level.

    Measured on an ``(R + 1) x (2R - 1)`` image (``R``: the deepest stride): rounded up, its height stays
    odd at every level, rounded down its width does, so a level that rounds otherwise shows.
    """
    height, width = reductions[-1] + 1, 2 * reductions[-1] - 1
    training = model.training
    try:
        with torch.no_grad():
            features = model.eval()(torch.zeros(1, 3, height, width))
    except (RuntimeError, AssertionError, ValueError) as error:
        raise ConfigError(
            f"model.encoder={encoder} does not run on a {height}x{width} image ({described(error)}); the "
            "U-Net needs an encoder that takes any size"
        ) from None
    finally:
        model.train(training)
    shapes = [tuple(feature.shape[1:]) for feature in features]
    for up in (True, False):
        divide = math.ceil if up else math.floor
        if shapes == [
            (c, divide(height / r), divide(width / r)) for c, r in zip(channels, reductions, strict=True)
        ]:
            return up
    raise ConfigError(
        f"model.encoder={encoder}: its features on a {height}x{width} image are {shapes}, not (channels, "
        f"H / stride, W / stride) rounded up or down alike at every level (NCHW), as the decoder needs"
    )


class TimmEncoder(Encoder):
    """A timm model's ``features_only`` network as an :class:`Encoder` (``model.encoder=timm-<model_name>``).

    Args:
        model_name: a timm model, with or without a pretrained tag (``convnext_atto.d2_in1k``).
        in_channels: input channels; other than 3 adapts the first convolution (as the torchvision
            backbones do) and the mean and std.
        weights: None (random initialisation), ``"imagenet"`` (timm's pretrained weights of the name,
            downloaded into its cache) or the path of a state dict (``torch.save``'d or ``.safetensors``)
            of the timm classifier (its head may be anything) or of its ``features_only`` network.

    The network runs whole (it yields every feature at once), so gradient checkpointing recomputes
    all of it; it has no 2x2 max-pools to hand indices out from (``pools`` all False).
    """

    def __init__(
        self, model_name: str, in_channels: int = 3, weights: str | os.PathLike | None = None
    ) -> None:
        super().__init__()
        timm = import_timm(PREFIX + model_name)
        self.model = features_model(timm, model_name, weights)
        self.channels = tuple(self.model.feature_info.channels())
        self.reductions = tuple(self.model.feature_info.reduction())
        first = self.reductions[0]
        if first & (first - 1) or self.reductions != tuple(
            first << level for level in range(len(self.channels))
        ):
            raise ConfigError(
                f"model.encoder={PREFIX}{model_name}: its features' strides {self.reductions} do not double "
                "from one to the next (from a power of 2), as the U-Net decoder's stages do"
            )
        self.ceil_mode = rounds_up(self.model, self.channels, self.reductions, PREFIX + model_name)
        self.pools = (False,) * (len(self.channels) - 1)
        self.decoder_channels = backbone_decoder_channels(self.channels)
        adapt_first_conv(self.model, in_channels)
        cfg = self.model.pretrained_cfg
        self.mean, self.std = adapt_statistics(cfg["mean"], cfg["std"], in_channels)

    def stage_modules(self) -> Iterable[nn.Module]:
        """One stage: the features network, which yields every feature."""
        return iter((self.model,))

    def forward(
        self,
        x: torch.Tensor,
        return_indices: bool = False,
        run: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Features ``[(B, channels[i], ~H / reductions[i], ~W / reductions[i])]`` and no pool indices."""
        features = self.model(x) if run is None else run(self.model, x)
        return list(features), [None] * (len(features) - 1)
