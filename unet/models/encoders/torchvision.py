"""Pretrained torchvision backbones as U-Net encoders: one table entry per backbone.

Each entry names the torchvision builder (which also names its weights enum) and the modules each
stage runs, by their torchvision names; the stage's output is the feature the decoder reads. A new
backbone is one more entry in :data:`BACKBONES`.

Input channels other than 3 adapt the first convolution's RGB kernels ``W`` (``(O, 3, k, k)``) after
the weights are loaded: for 1 channel their sum over RGB, so a gray image gives exactly what the RGB
network gives on that image repeated in 3 channels; for ``C`` channels the RGB kernels repeated
cyclically (R, G, B, R, ...) and scaled by ``3 / C``, so activations keep their scale. The ImageNet
mean and std are adapted alike (their average for 1 channel, repeated cyclically for ``C``).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn

from unet.models.encoders.base import Encoder, register_encoder
from unet.models.safe_loading import unsafe_file_message
from unet.utils.errors import InputNotFoundError, UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Backbone decoder stages are the skip's width capped here (smp's Unet decodes at 256 down to 16).
MAX_DECODER_CHANNELS = 256


class EncoderWeightsError(UserError, ValueError):
    """Weights that cannot be obtained or do not fit the backbone (a user error: told in one line)."""


@dataclass(frozen=True)
class Backbone:
    """Where a torchvision classifier's features are tapped.

    Attributes:
        builder: name of the ``torchvision.models`` builder, e.g. ``"resnet34"``.
        stages: per feature, the modules (torchvision names) run from the previous feature to it. A
            stage that starts with a 2x2 max-pool hands its indices to max-unpooling.
        channels: channels of each stage's output.
        reductions: stride of each stage's output w.r.t. the input.
        ceil_mode: whether the stride-2 steps round odd sizes up (padded convs) rather than down.
    """

    builder: str
    stages: tuple[tuple[str, ...], ...]
    channels: tuple[int, ...]
    reductions: tuple[int, ...]
    ceil_mode: bool


def _children(parent: str, start: int, stop: int) -> tuple[str, ...]:
    """``parent.start`` ... ``parent.(stop - 1)``: a run of a ``Sequential``'s children."""
    return tuple(f"{parent}.{index}" for index in range(start, stop))


_RESNET_STAGES = (("conv1", "bn1", "relu"), ("maxpool", "layer1"), ("layer2",), ("layer3",), ("layer4",))
_RESNET_STRIDES = (2, 4, 8, 16, 32)
BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone("resnet18", _RESNET_STAGES, (64, 64, 128, 256, 512), _RESNET_STRIDES, True),
    "resnet34": Backbone("resnet34", _RESNET_STAGES, (64, 64, 128, 256, 512), _RESNET_STRIDES, True),
    "resnet50": Backbone("resnet50", _RESNET_STAGES, (64, 256, 512, 1024, 2048), _RESNET_STRIDES, True),
    # SegNet's encoder: five 2x2 max-pools, the last one's output the deepest feature.
    "vgg16_bn": Backbone(
        "vgg16_bn",
        tuple(
            _children("features", a, b) for a, b in ((0, 6), (6, 13), (13, 23), (23, 33), (33, 43), (43, 44))
        ),
        (64, 128, 256, 512, 512, 512),
        (1, 2, 4, 8, 16, 32),
        False,
    ),
    "convnext_tiny": Backbone(
        "convnext_tiny",
        tuple(_children("features", a, a + 2) for a in (0, 2, 4, 6)),
        (96, 192, 384, 768),
        (4, 8, 16, 32),
        False,
    ),
    # The last inverted-residual stage is the deepest feature; the 1x1 expansion to the
    # classifier's width (1280 / 960 channels) is left out.
    "efficientnet_b0": Backbone(
        "efficientnet_b0",
        tuple(_children("features", a, b) for a, b in ((0, 2), (2, 3), (3, 4), (4, 6), (6, 8))),
        (16, 24, 40, 112, 320),
        _RESNET_STRIDES,
        True,
    ),
    "mobilenet_v3_large": Backbone(
        "mobilenet_v3_large",
        tuple(_children("features", a, b) for a, b in ((0, 2), (2, 4), (4, 7), (7, 13), (13, 16))),
        (16, 24, 40, 112, 160),
        _RESNET_STRIDES,
        True,
    ),
}


def imagenet_state_dict(builder: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights of ``builder``, downloaded once into torchvision's cache.

    Offline, the download fails: the error says which file to fetch elsewhere and how to use it.
    """
    weights = torchvision.models.get_model_weights(builder).DEFAULT
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash a RuntimeError
        raise EncoderWeightsError(
            f"could not download the imagenet weights of {builder} (offline?): download {weights.url} on a "
            f"machine with internet and pass its path: model.encoder_weights=/path/to/{Path(weights.url).name} "
            f"({type(error).__name__}: {error})"
        ) from error


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save`` (tensors only: read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"encoder weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # a file that would run code: never PyTorch's advice to load it
        raise EncoderWeightsError(unsafe_file_message(path, error)) from None
    except (
        Exception
    ) as error:  # not a torch.save file, or damaged: struct.error, UnpicklingError, EOFError...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise EncoderWeightsError(f"{path} is not a readable torch.save file ({reason})") from None
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise EncoderWeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def load_backbone_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], used: Iterable[str], source: str
) -> None:
    """Load ``state`` into ``model``, requiring every tensor of the ``used`` modules.

    The tensors of modules the encoder does not use (the classifier head: ``fc.*``, ``classifier.*``)
    may be present or not, of any shape (a classifier fine-tuned to other classes), so a whole
    classifier's checkpoint and a backbone's alone both load; a name the model does not have at all
    means another architecture, and is refused.
    """
    expected = model.state_dict()
    prefixes = tuple(f"{name}." for name in used)
    missing = sorted(key for key in expected if key.startswith(prefixes) and key not in state)
    unexpected = sorted(key for key in state if key not in expected)
    if missing or unexpected:
        raise EncoderWeightsError(
            f"{source} does not fit the backbone: missing {_some(missing)}; unexpected {_some(unexpected)}"
        )
    state = {key: value for key, value in state.items() if key.startswith(prefixes)}
    mismatched = sorted(key for key in state if state[key].shape != expected[key].shape)
    if mismatched:
        raise EncoderWeightsError(f"{source} does not fit the backbone: other shapes for {_some(mismatched)}")
    model.load_state_dict(state, strict=False)


def _some(keys: list[str], shown: int = 5) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def adapt_channels(values: torch.Tensor, in_channels: int, dim: int, scale: bool) -> torch.Tensor:
    """RGB entries along ``dim`` for ``in_channels`` inputs (see the module's docstring for the rule).

    ``scale``: kernels sum for 1 channel and are scaled by ``3 / C``; statistics average and repeat.
    """
    if in_channels == 1:
        return values.sum(dim, keepdim=True) if scale else values.mean(dim, keepdim=True)
    repeated = values.index_select(dim, torch.arange(in_channels) % 3)
    return repeated * (3 / in_channels) if scale else repeated


def adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """Make the first ``Conv2d`` of ``model`` take ``in_channels`` inputs, kernels adapted.

    In place, so a subclass keeps its own behaviour (timm's ``Conv2dSame`` pads as TensorFlow does).
    """
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    if in_channels == conv.in_channels:
        return
    with torch.no_grad():
        conv.weight = nn.Parameter(adapt_channels(conv.weight, in_channels, dim=1, scale=True))
    conv.in_channels = in_channels


def adapt_statistics(
    mean: Sequence[float], std: Sequence[float], in_channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The RGB ``mean`` and ``std`` the weights expect, for ``in_channels`` inputs (see :func:`adapt_channels`)."""
    statistics = torch.tensor([mean, std], dtype=torch.float64)
    adapted_mean, adapted_std = adapt_channels(statistics, in_channels, dim=1, scale=False).tolist()
    return tuple(adapted_mean), tuple(adapted_std)


def backbone_decoder_channels(channels: Sequence[int]) -> tuple[int, ...]:
    """A backbone's decoder stage widths: each skip's width capped at :data:`MAX_DECODER_CHANNELS`, but
    never narrower than the next shallower skip, so the decoder narrows towards the input."""
    return tuple(
        max(min(width, MAX_DECODER_CHANNELS), channels[level - 1] if level else 1)
        for level, width in enumerate(channels[:-1])
    )


def _is_2x2_max_pool(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.MaxPool2d)
        and module.kernel_size in (2, (2, 2))
        and module.stride in (2, (2, 2))
        and module.padding in (0, (0, 0))
        and not module.ceil_mode
    )


class TorchvisionEncoder(Encoder):
    """A torchvision classifier's stages (see :data:`BACKBONES`) as an :class:`Encoder`.

    Args:
        backbone: where its features are tapped.
        in_channels: input channels; other than 3 adapts the first convolution (module docstring).
        weights: None (random initialisation), ``"imagenet"`` (torchvision's default weights,
            downloaded to torchvision's cache), or the path of a state dict of the classifier (``.pth``).

    ``decoder_channels``: see :func:`backbone_decoder_channels`.
    """

    def __init__(
        self, backbone: Backbone, in_channels: int = 3, weights: str | os.PathLike | None = None
    ) -> None:
        super().__init__()
        model = getattr(torchvision.models, backbone.builder)(weights=None)
        if weights is not None:
            if weights == "imagenet":
                state, source = imagenet_state_dict(backbone.builder), "the imagenet weights"
            else:
                state, source = read_state_dict(weights), str(weights)
            load_backbone_weights(model, state, (name for stage in backbone.stages for name in stage), source)
        adapt_first_conv(model, in_channels)
        stages = [[model.get_submodule(name) for name in stage] for stage in backbone.stages]
        # A stage's leading 2x2 max-pool is run by Encoder.forward, which can return its indices.
        self.pools = tuple(_is_2x2_max_pool(stage[0]) for stage in stages[1:])
        self.stages = nn.ModuleList(
            nn.Sequential(*(stage[1:] if level > 0 and self.pools[level - 1] else stage))
            for level, stage in enumerate(stages)
        )
        self.channels = backbone.channels
        self.reductions = backbone.reductions
        self.ceil_mode = backbone.ceil_mode
        self.decoder_channels = backbone_decoder_channels(backbone.channels)
        self.mean, self.std = adapt_statistics(IMAGENET_MEAN, IMAGENET_STD, in_channels)

    def stage_modules(self) -> Iterable[nn.Module]:
        return iter(self.stages)


for _name, _backbone in BACKBONES.items():
    register_encoder(_name)(partial(TorchvisionEncoder, _backbone))
