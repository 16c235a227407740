"""The data of the report's qualitative panel: one validation image predicted by every method."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from unet.models.loading import LoadedModel, load_checkpoint
from unet.training.checkpoint import training_data_config
from unet.utils.class_maps import class_map
from unet.utils.visualize import denormalize


def qualitative_panel(checkpoints: Mapping[str, Path]) -> dict[str, Any] | None:
    """The first validation image with its ground truth and every method's prediction; ``None`` without checkpoints.

    The image comes from the data of the first checkpoint's run, which every run of a comparison shares.
    """
    if not checkpoints:
        return None
    predictions, image, target, ignore_index = {}, None, None, None
    for method, path in checkpoints.items():
        checkpoint = load_checkpoint(path)
        network = LoadedModel.from_checkpoint(checkpoint, path).network
        if image is None:
            datamodule = instantiate(training_data_config(checkpoint, path))
            datamodule.setup("validate")
            normalized, target = datamodule.dataset("val")[0]
            image = denormalize(normalized, datamodule.mean, datamodule.std)
            ignore_index = datamodule.ignore_index
        with torch.inference_mode():
            predictions[method] = class_map(network(normalized[None]))[0]
    return {"image": image, "target": target, "predictions": predictions, "ignore_index": ignore_index}
