"""The JSON sidecar beside every exported file: what a consumer needs to run the model correctly.

``unet.models.loading.read_sidecar`` reads it back (``load_model`` and the predictors do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import unet
from unet.models.loading import LoadedModel, sidecar_path
from unet.models.networks import min_input_size
from unet.utils.files import write_json


def model_metadata(model: LoadedModel, metrics: dict[str, Any] | None, export_format: str) -> dict[str, Any]:
    """Input channels, normalisation, classes, the network and training metrics of a trained model.

    ``net`` is the network's complete config (``unet.models.build_network(sidecar["net"])`` rebuilds
    it); ``min_size`` is the smallest height/width it takes; predictors pad smaller images to it.
    """
    network = model.net_config
    return {
        "format": export_format,
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "class_names": list(model.class_names),
        "ignore_index": model.ignore_index,
        "mean": list(model.mean),
        "std": list(model.std),
        "upsample": network.get("upsample"),
        "upsample_options": dict(network.get("upsample_options") or {}),
        "net": network,
        "min_size": min_input_size(model.network),
        # What the file takes and returns; embed_preprocessing=true changes both (export.preprocessing).
        "embed_preprocessing": False,
        "input": {
            "name": "images",
            "shape": ["batch", model.in_channels, "height", "width"],
            "dtype": "float32",
            "layout": "bchw",
            "preprocessing": "before the model: x / 255 for uint8 images, then (x - mean) / std per channel",
        },
        "output": {
            "name": "logits",
            "kind": "logits",
            "shape": ["batch", model.num_classes, "height", "width"],
            "dtype": "float32",
        },
        "metrics": metrics or {},
        "versions": {"unet": unet.__version__, "torch": torch.__version__},
    }


def write_metadata(exported: str | Path, metadata: dict[str, Any]) -> Path:
    return write_json(sidecar_path(exported), metadata)
