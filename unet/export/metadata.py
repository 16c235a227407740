"""The JSON sidecar beside every exported file: what a consumer needs to run the model correctly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import unet
from unet.utils.files import write_json

SIDECAR_SUFFIX = ".json"


def sidecar_path(exported: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    exported = Path(exported)
    return exported.with_name(exported.name + SIDECAR_SUFFIX)


def model_metadata(
    hparams: dict[str, Any], metrics: dict[str, Any] | None, export_format: str
) -> dict[str, Any]:
    """Input channels, normalisation, classes, method and training metrics of a trained model.

    ``min_size`` is the smallest height/width the network takes (``2**depth``); predictors pad
    smaller images to it.
    """
    return {
        "format": export_format,
        "in_channels": int(hparams["in_channels"]),
        "num_classes": int(hparams["num_classes"]),
        "class_names": list(hparams["class_names"]),
        "ignore_index": hparams.get("ignore_index"),
        "mean": [float(value) for value in hparams["mean"]],
        "std": [float(value) for value in hparams["std"]],
        "upsample": hparams.get("upsample"),
        "upsample_options": dict(hparams.get("upsample_options") or {}),
        "depth": int(hparams.get("depth", 4)),
        "min_size": 2 ** int(hparams.get("depth", 4)),
        "input": {
            "name": "images",
            "shape": ["batch", hparams["in_channels"], "height", "width"],
            "dtype": "float32",
        },
        "output": {"name": "logits", "shape": ["batch", hparams["num_classes"], "height", "width"]},
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
