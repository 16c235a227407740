"""The preprocessing a deployment would otherwise re-implement, inside the exported graph.

``embed_preprocessing=true`` exports :class:`EmbeddedPreprocessing` around the network: it takes the
pixels as stored (uint8) and normalises them exactly as the data pipeline does
(:func:`unet.data.transforms.normalize_image`: ``x / 255``, then ``(x - mean) / std`` per channel,
with the checkpoint's mean/std), so a consumer cannot get the normalisation subtly wrong; with
``outputs=mask`` it returns class indices instead of logits. The sidecar's ``input`` and ``output`` say
which form a file takes and returns; :func:`example_input` draws inputs of that form for the checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unet.utils.errors import ConfigError
from unet.utils.normalization import channel_tensor

# Input layouts of an embedded-preprocessing export: images as decoded (channels last), or as tensors.
LAYOUTS = ("bhwc", "bchw")
OUTPUTS = ("logits", "mask")


class EmbeddedPreprocessing(nn.Module):
    """``net`` behind the data pipeline's normalisation: uint8 pixels in, logits or class indices out."""

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        layout: str = "bhwc",
        outputs: str = "logits",
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", channel_tensor(mean))  # (C, 1, 1): broadcasts over (B, C, H, W)
        self.register_buffer("std", channel_tensor(std))
        self.channels_last = layout == "bhwc"
        self.mask = outputs == "mask"

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, H, W, C)`` (layout ``bhwc``) or ``(B, C, H, W)`` -> logits ``(B, K, H, W)`` float32."""
        if self.channels_last:
            images = images.permute(0, 3, 1, 2)
        # The operations of normalize_image, in its order: the same float32 input to the bit.
        return self.net((images.float() / 255.0 - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """-> logits ``(B, K, H, W)`` float32, or with ``outputs=mask`` class indices ``(B, H, W)`` int64."""
        logits = self.logits(images)
        return logits.argmax(dim=1) if self.mask else logits


def example_input(metadata: dict[str, Any], check: bool = False) -> torch.Tensor:
    """A random input of two images above the minimum size (one with ``check``), in the form the
    sidecar's ``input`` names: float32 ``(B, C, H, W)``, or uint8 pixels in layout ``bchw`` or ``bhwc`` for a model with embedded
    preprocessing. Odd ``H != W`` to export with; with ``check``, another size of other parities, so a
    check runs what the export did not trace."""
    size = metadata["min_size"]
    height, width = (3 * size + 1, 2 * size + 6) if check else (2 * size + 3, 3 * size + 5)
    generator = torch.Generator().manual_seed(int(check))
    batch = 1 if check else 2  # the check runs one image, as unet-predict does, the export traced two
    images = torch.randn(batch, metadata["in_channels"], height, width, generator=generator)
    spec = metadata.get("input", {})
    if spec.get("dtype") == "uint8":
        images = (images * 64 + 128).clamp(0, 255).to(torch.uint8)
    if spec.get("layout") == "bhwc":
        images = images.permute(0, 2, 3, 1).contiguous()
    return images


def check_embedding_options(embed: bool, layout: str | None, outputs: str) -> str:
    """The input layout to export with (``bhwc`` unless chosen); refuses options that need
    ``embed_preprocessing=true`` without it, or values outside the choices."""
    if not embed:
        if layout is not None or outputs != "logits":
            key = f"input_layout={layout}" if layout is not None else f"outputs={outputs}"
            raise ConfigError(
                f"{key} needs embed_preprocessing=true (a plain export takes float (B, C, H, W))"
            )
        return "bchw"
    layout = layout or "bhwc"
    if layout not in LAYOUTS:
        raise ConfigError(f"input_layout={layout}: expected one of {', '.join(LAYOUTS)}")
    if outputs not in OUTPUTS:
        raise ConfigError(f"outputs={outputs}: expected one of {', '.join(OUTPUTS)}")
    return layout


def embed_preprocessing(net: nn.Module, metadata: dict[str, Any], layout: str, outputs: str) -> nn.Module:
    """``net`` wrapped in :class:`EmbeddedPreprocessing`; ``metadata`` (the sidecar) updated to say what the
    file takes and returns, which is how predictors know to feed it uint8 and read masks."""
    channels, classes = metadata["in_channels"], metadata["num_classes"]
    metadata["embed_preprocessing"] = True
    metadata["input"] = {
        "name": "images",
        "shape": ["batch", "height", "width", channels]
        if layout == "bhwc"
        else ["batch", channels, "height", "width"],
        "dtype": "uint8",
        "layout": layout,
        "preprocessing": "in the model: x / 255, then (x - mean) / std per channel",
    }
    metadata["output"] = (
        {"name": "mask", "kind": "mask", "shape": ["batch", "height", "width"], "dtype": "int64"}
        if outputs == "mask"
        else {
            "name": "logits",
            "kind": "logits",
            "shape": ["batch", classes, "height", "width"],
            "dtype": "float32",
        }
    )
    return EmbeddedPreprocessing(net, metadata["mean"], metadata["std"], layout, outputs).eval()
