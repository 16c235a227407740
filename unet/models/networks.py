"""Networks as plain configs: ``{"_target_": callable, **options}``, built without Hydra.

A network is any callable taking ``in_channels`` and ``num_classes`` (filled from the data) plus its
own options, returning a module that maps ``(B, C, H, W)`` images to ``(B, K, H, W)`` logits. Its
complete config (:func:`network_config`) is what checkpoints and export sidecars store, so the
network's options exist in one place and rebuild it anywhere. Targets are resolved only inside
:data:`TRUSTED_PACKAGES`: a config read from a file cannot name arbitrary code to run.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unet.utils.errors import ConfigError

DEFAULT_NET: dict[str, Any] = {"_target_": "unet.models.UNet"}
# Packages whose callables a config read from a file may name: ours, torch's (optimizers,
# schedules), the peers' model libraries and the augmentations of a stored data config.
TRUSTED_PACKAGES = (
    "unet",
    "torch",
    "torchvision",
    "monai",
    "segmentation_models_pytorch",
    "timm",
    "albumentations",
)
# Smallest input side assumed for a network that does not say (five stride-2 levels).
FALLBACK_MIN_SIZE = 32


def check_trusted_targets(config: Any) -> None:
    """Refuse a config (nested dicts and lists) naming a ``_target_`` outside :data:`TRUSTED_PACKAGES`.

    Checkpoint hyper-parameters and sidecars are data, read with ``weights_only=True`` or as JSON; this
    keeps building objects from them from running code that no trusted package holds.
    """
    if isinstance(config, Mapping):
        target = config.get("_target_")
        if target is not None and (
            not isinstance(target, str) or target.split(".")[0] not in TRUSTED_PACKAGES
        ):
            raise ConfigError(
                f"_target_ {target!r} is outside the packages a config may name ({', '.join(TRUSTED_PACKAGES)})"
            )
        for value in config.values():
            check_trusted_targets(value)
    elif isinstance(config, list | tuple):
        for value in config:
            check_trusted_targets(value)


def resolve_target(target: str) -> Callable[..., Any]:
    """The callable a ``_target_`` string names (``"unet.models.UNet"``), within :data:`TRUSTED_PACKAGES`."""
    check_trusted_targets({"_target_": target})
    module_name, _, attribute = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot import network _target_ {target!r}: {error}") from None


class ScaledNetwork(nn.Module):
    """Runs ``network`` at ``scale`` times the input's resolution and returns logits at the input's size.

    ``(B, C, H, W)`` -> downscaled (bilinear; at 0.5 exactly the mean of each 2x2 block) -> ``network``
    -> logits upsampled (bilinear) to ``(B, K, H, W)``. Not antialiased: onnxruntime's antialiased
    resize differs from PyTorch's, and exports must give the same logits. Training at a reduced resolution fits a CPU budget, while losses, scores,
    exports and predictions all stay at the data's own resolution.
    """

    def __init__(self, network: nn.Module, scale: float) -> None:
        super().__init__()
        if not 0 < scale <= 1:
            raise ConfigError(f"input_scale must be in (0, 1], got {scale}")
        self.inner = network
        self.scale = float(scale)
        self.min_size = math.ceil(min_input_size(network) / self.scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        small = F.interpolate(images, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return F.interpolate(self.inner(small), size=size, mode="bilinear", align_corners=False)


def network_config(
    net: Mapping[str, Any],
    in_channels: int,
    num_classes: int,
    upsample: str | None = None,
    upsample_options: Mapping[str, Any] | None = None,
    input_scale: float = 1.0,
    encoder: str | None = None,
) -> dict[str, Any]:
    """The complete constructor call of a network: ``net`` with the data's sizes, the upsampling method
    and the encoder.

    ``upsample`` (with its options) is the decoder choice runs are compared by; ``None`` for a
    network that has none. ``encoder`` names a registered encoder (``unet.models.ENCODERS``); ``None``
    leaves the network's own. Pretrained weights are not part of it: a rebuilt network gets its
    weights from a state dict. ``input_scale`` below 1 runs the network at that fraction of the
    input's resolution (:class:`ScaledNetwork`; the data's ``train_scale``).
    """
    config = {**net, "in_channels": int(in_channels), "num_classes": int(num_classes)}
    if input_scale != 1:
        config["input_scale"] = float(input_scale)
    if upsample is not None:
        config["upsample"] = upsample
        config["upsample_options"] = dict(upsample_options or {})
    elif upsample_options:
        raise ConfigError("model.upsample_options is set but model.upsample is null")
    if encoder is not None:
        config["encoder"] = encoder
    return config


def build_network(config: Mapping[str, Any]) -> nn.Module:
    """Call the config's ``_target_`` with its options (see :func:`network_config`)."""
    if "_target_" not in config:
        raise ConfigError(f"a network config needs a _target_; got keys {sorted(config)}")
    target = resolve_target(config["_target_"])
    options = {key: value for key, value in config.items() if key not in ("_target_", "input_scale")}
    for key, what in (
        ("upsample", "decoder upsampling"),
        ("encoder", "encoder"),
        ("encoder_weights", "encoder"),
    ):
        if key in options and not _accepts(target, key):
            raise ConfigError(
                f"{config['_target_']} has no {what} to choose; set model.{key}=null (got model.{key}={options[key]})"
            )
    network = target(**options)
    scale = config.get("input_scale", 1.0)
    return network if scale == 1 else ScaledNetwork(network, scale)


def network_name(config: Mapping[str, Any]) -> str:
    """What runs of this network are filed under: its upsampling method, else its callable's name."""
    return config.get("upsample") or str(config["_target_"]).rpartition(".")[2].lower()


def min_input_size(network: nn.Module) -> int:
    """Smallest height/width ``network`` accepts (its ``min_size`` attribute); predictors pad up to it."""
    return int(getattr(network, "min_size", FALLBACK_MIN_SIZE))


def _accepts(target: Callable[..., Any], keyword: str) -> bool:
    parameters = inspect.signature(target).parameters.values()
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
