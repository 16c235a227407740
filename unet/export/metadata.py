"""The JSON sidecar beside every exported file: what a consumer needs to run the model correctly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import unet
from unet.models.networks import min_input_size
from unet.utils.files import write_json

SIDECAR_SUFFIX = ".json"


def sidecar_path(exported: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    exported = Path(exported)
    return exported.with_name(exported.name + SIDECAR_SUFFIX)


def model_metadata(module: Any, metrics: dict[str, Any] | None, export_format: str) -> dict[str, Any]:
    """Input channels, normalisation, classes, the network and training metrics of a trained module.

    ``net`` is the network's complete config (``unet.models.build_network(sidecar["net"])`` rebuilds
    it); ``min_size`` is the smallest height/width it takes; predictors pad smaller images to it.
    """
    hparams, network = module.hparams, module.network_config
    return {
        "format": export_format,
        "in_channels": int(hparams["in_channels"]),
        "num_classes": int(hparams["num_classes"]),
        "class_names": list(hparams["class_names"]),
        "ignore_index": hparams.get("ignore_index"),
        "mean": [float(value) for value in hparams["mean"]],
        "std": [float(value) for value in hparams["std"]],
        "upsample": network.get("upsample"),
        "upsample_options": dict(network.get("upsample_options") or {}),
        "net": network,
        "min_size": min_input_size(module.net),
        # What the file takes and returns; embed_preprocessing=true changes both (export.preprocessing).
        "embed_preprocessing": False,
        "input": {
            "name": "images",
            "shape": ["batch", hparams["in_channels"], "height", "width"],
            "dtype": "float32",
            "layout": "bchw",
            "preprocessing": "before the model: x / 255 for uint8 images, then (x - mean) / std per channel",
        },
        "output": {
            "name": "logits",
            "kind": "logits",
            "shape": ["batch", hparams["num_classes"], "height", "width"],
            "dtype": "float32",
        },
        "metrics": metrics or {},
        "versions": {"unet": unet.__version__, "torch": torch.__version__},
    }


def write_metadata(exported: str | Path, metadata: dict[str, Any]) -> Path:
    return write_json(sidecar_path(exported), metadata)


def read_metadata(exported: str | Path) -> dict[str, Any]:
    """The sidecar of an exported file (plain JSON: nothing is unpickled)."""
    path = sidecar_path(exported)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: an exported model needs its JSON sidecar (written by unet-export)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
