"""Peer networks for baselines and benchmarks: the U-Nets users would otherwise reach for.

Each builder follows the network contract of this framework (``configs/model/net/``): it takes the
keywords ``in_channels`` and ``num_classes`` (filled from the data) plus options of its own, and
returns an ``nn.Module`` mapping ``(B, C, H, W)`` images to ``(B, K, H, W)`` logits. Its attribute
``min_size`` is the smallest input side it accepts, which exporters and predictors read. The peer
packages are optional (``pip install -e ".[baselines]"``), so they are imported on use.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from unet.utils.extras import MissingExtraError, install_hint


def monai_basicunet(
    in_channels: int, num_classes: int, features: Sequence[int] = (32, 32, 64, 128, 256, 32)
) -> nn.Module:
    """MONAI's 2D ``BasicUNet`` (``features``: the five encoder widths and the last decoder width)."""
    try:
        from monai.networks.nets import BasicUNet
    except ImportError as error:
        raise MissingExtraError(f"monai_basicunet needs MONAI: {install_hint('baselines')}") from error
    net = BasicUNet(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes, features=tuple(features)
    )
    net.min_size = 16  # four 2x poolings
    return net


def smp_unet(
    in_channels: int, num_classes: int, encoder: str = "resnet18", encoder_weights: str | None = None
) -> nn.Module:
    """segmentation_models_pytorch's ``Unet`` on ``encoder`` (``encoder_weights``: e.g. "imagenet", None: random)."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as error:
        raise MissingExtraError(
            f"smp_unet needs segmentation_models_pytorch: {install_hint('baselines')}"
        ) from error
    net = smp.Unet(encoder, encoder_weights=encoder_weights, in_channels=in_channels, classes=num_classes)
    net.min_size = 32  # the encoder downsamples five times
    return net
