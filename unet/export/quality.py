"""What an exported form costs in quality: its scores on the validation split against the checkpoint's.

Every form (``unet-export``'s file and its int8 copy) runs on the validation images of the data the
checkpoint was trained on, beside the checkpoint's own network; the sidecar's ``quality`` records the
mIoU and pixel accuracy of both and the change, which is what ``unet-predict runtime_choice=auto`` weighs.
The same run's training images calibrate static quantisation (:func:`calibration_images`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from unet.training.checkpoint import check_fits_data, training_data_config
from unet.training.metrics import SegmentationScores

# Normalised float32 (B, C, H, W) -> logits (B, K, H, W): every form run on the same inputs.
Runner = Callable[[np.ndarray], np.ndarray]
REFERENCE = "checkpoint"


def run_dataset(split: str, metadata: dict[str, Any], checkpoint: dict[str, Any], ckpt_path: Path):
    """The ``split`` dataset of the run's stored data config, normalised with the checkpoint's mean/std.

    Raises whatever keeps the data from being read here (not stored, moved, other classes)."""
    datamodule = instantiate(
        training_data_config(checkpoint, ckpt_path), mean=metadata["mean"], std=metadata["std"]
    )
    check_fits_data(metadata, datamodule, ckpt_path)
    datamodule.setup("fit" if split == "train" else "validate")
    return datamodule.dataset(split)


def calibration_images(
    metadata: dict[str, Any], checkpoint: dict[str, Any], ckpt_path: Path, count: int
) -> Iterator[np.ndarray]:
    """Up to ``count`` training images ``(1, C, H, W)`` float32, normalised, as training saw them."""
    dataset = run_dataset("train", metadata, checkpoint, ckpt_path)
    for index in range(min(count, len(dataset))):  # by index: a dataset need not end its iteration
        yield dataset[index][0][None].numpy()


def validation_quality(
    runs: dict[str, Runner],
    reference: Runner,
    metadata: dict[str, Any],
    checkpoint: dict[str, Any],
    ckpt_path: Path,
) -> dict[str, dict[str, Any]]:
    """Each of ``runs``' quality record on the validation split, whole images, against ``reference``
    (the checkpoint's network): mIoU, pixel accuracy, their changes and the share of pixels whose class
    agrees with the checkpoint's. Where the data cannot be read here, each record says why (``skipped``)."""
    try:
        dataset = run_dataset("val", metadata, checkpoint, ckpt_path)
    except Exception as error:  # noqa: BLE001 -- whatever keeps the data from being read, the sidecar says it
        skipped = {"skipped": f"the validation data could not be read: {type(error).__name__}: {error}"}
        return {name: dict(skipped) for name in runs}
    everyone = {REFERENCE: reference, **runs}
    scores = {
        name: SegmentationScores(metadata["class_names"], metadata["ignore_index"]) for name in everyone
    }
    agreeing = dict.fromkeys(runs, 0)
    total = 0
    for index in range(len(dataset)):  # by index: a dataset need not end its iteration
        image, target = dataset[index]
        predictions = {
            name: torch.from_numpy(np.asarray(run(image[None].numpy()))).argmax(dim=1)
            for name, run in everyone.items()
        }
        for name, prediction in predictions.items():
            scores[name].update(prediction, target[None])
        for name in runs:
            agreeing[name] += int((predictions[name] == predictions[REFERENCE]).sum())
        total += predictions[REFERENCE].numel()
    computed = {name: score.compute() for name, score in scores.items()}
    base = computed[REFERENCE]
    return {
        name: {
            "split": "val",
            "images": len(dataset),
            "against": REFERENCE,
            "miou_checkpoint": base["miou"],
            "miou": computed[name]["miou"],
            "miou_change": computed[name]["miou"] - base["miou"],
            "pixel_accuracy_checkpoint": base["pixel_acc"],
            "pixel_accuracy": computed[name]["pixel_acc"],
            "pixel_accuracy_change": computed[name]["pixel_acc"] - base["pixel_acc"],
            "pixels_agreeing": agreeing[name] / total if total else None,
        }
        for name in runs
    }


def describe_quality(quality: dict[str, Any]) -> str:
    """One line: validation mIoU checkpoint -> this form (or why it was not measured)."""
    if "skipped" in quality:
        return quality["skipped"]
    return (
        f"validation mIoU {quality['miou_checkpoint']:.4f} -> {quality['miou']:.4f} "
        f"({quality['miou_change']:+.4f}), pixel accuracy {quality['pixel_accuracy_change']:+.4f} "
        f"({quality['images']} images)"
    )
