"""Quantised copies of ONNX exports, and what quantising cost: size, logits and validation mIoU.

``quantize=dynamic`` runs onnxruntime's dynamic quantisation: weights stored as 8-bit integers,
activations quantised on the fly per inference. The int8 file is written beside the float one
(``best.onnx`` -> ``best.int8.onnx``, with its own sidecar), which stays: it is what the int8 file
is measured against, and what to ship where the accuracy change is too large.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from unet.export.preprocessing import example_input
from unet.training.checkpoint import check_fits_data, training_data_config
from unet.training.metrics import SegmentationScores
from unet.utils.extras import requires_extra

QUANTIZED_INFIX = ".int8"
# Operators given integer weights. A U-Net is convolutions (ORT's default list also holds MatMul,
# Gather, ...: absent here); ConvInteger runs on CPU with uint8 weights only, hence the weight type.
DYNAMIC_OP_TYPES = ["Conv", "MatMul"]

QUANTIZERS: dict[str, Callable[[Path, Path], dict[str, Any]]] = {}


def register_quantizer(name: str):
    def decorator(function):
        QUANTIZERS[name] = function
        return function

    return decorator


def quantized_path(exported: str | Path) -> Path:
    """``best.onnx`` -> ``best.int8.onnx``."""
    exported = Path(exported)
    return exported.with_name(f"{exported.stem}{QUANTIZED_INFIX}{exported.suffix}")


@register_quantizer("dynamic")
def quantize_dynamic(source: Path, target: Path) -> dict[str, Any]:
    """onnxruntime's ``quantize_dynamic``: int8 weights, activations quantised per inference."""
    with requires_extra("export"):
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(source, target, op_types_to_quantize=DYNAMIC_OP_TYPES, weight_type=QuantType.QUInt8)
    return {"method": "dynamic", "op_types": DYNAMIC_OP_TYPES, "weight_type": "uint8"}


def onnx_logits(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Normalised float32 ``(B, C, H, W)`` -> logits ``(B, K, H, W)`` of an ONNX file, on the CPU."""
    with requires_extra("export"):
        import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images})[0]


def validation_scores(
    runs: dict[str, Callable[[np.ndarray], np.ndarray]],
    metadata: dict[str, Any],
    checkpoint: dict[str, Any],
    ckpt_path: Path,
) -> dict[str, Any]:
    """mIoU of each of ``runs`` on the validation split of the data the checkpoint was trained on, whole
    images; or, where that data cannot be read here, why not (``skipped``)."""
    try:
        datamodule = instantiate(
            training_data_config(checkpoint, ckpt_path), mean=metadata["mean"], std=metadata["std"]
        )
        check_fits_data(metadata, datamodule, ckpt_path)
        datamodule.setup("validate")
        dataset = datamodule.dataset("val")
    except Exception as error:  # noqa: BLE001 -- whatever keeps the data from being read, the sidecar says it
        return {"skipped": f"the validation data could not be read: {type(error).__name__}: {error}"}
    scores = {name: SegmentationScores(metadata["class_names"], metadata["ignore_index"]) for name in runs}
    agreeing = total = 0
    for index in range(len(dataset)):  # by index: a dataset need not end its iteration
        image, target = dataset[index]
        predictions = {
            name: torch.from_numpy(run(image[None].numpy())).argmax(dim=1) for name, run in runs.items()
        }
        for name, prediction in predictions.items():
            scores[name].update(prediction, target[None])
        first, second = predictions.values()
        agreeing, total = agreeing + int((first == second).sum()), total + first.numel()
    miou = {name: score.compute()["miou"] for name, score in scores.items()}
    return {
        "split": "val",
        "images": len(dataset),
        **{f"miou_{name}": value for name, value in miou.items()},
        "miou_change": miou["int8"] - miou["float32"],
        "pixels_agreeing": agreeing / total if total else None,
    }


def quantize_onnx(
    method: str,
    source: Path,
    target: Path,
    metadata: dict[str, Any],
    checkpoint: dict[str, Any],
    ckpt_path: Path,
) -> dict[str, Any]:
    """Write ``target``, the quantised ``source``; returns the sidecar's ``quantization`` record: the
    method, both files and sizes, the max abs logit difference on a random input, validation mIoU."""
    record = QUANTIZERS[method](source, target)
    runs = {"float32": onnx_logits(source), "int8": onnx_logits(target)}
    images = example_input(metadata).numpy()
    difference = float(np.abs(runs["int8"](images) - runs["float32"](images)).max())
    return {
        **record,
        "file": target.name,
        "float_file": source.name,
        "bytes": {"float32": source.stat().st_size, "int8": target.stat().st_size},
        "max_abs_logit_diff": difference,
        "validation": validation_scores(runs, metadata, checkpoint, ckpt_path),
    }


def describe_quantization(report: dict[str, Any]) -> str:
    """One line: sizes, and validation mIoU float -> int8 (or why it was not measured)."""
    sizes = f"{report['bytes']['float32']:,} -> {report['bytes']['int8']:,} bytes"
    validation = report["validation"]
    if "skipped" in validation:
        return f"{sizes}; {validation['skipped']}"
    return (
        f"{sizes}; validation mIoU {validation['miou_float32']:.4f} -> {validation['miou_int8']:.4f} "
        f"({validation['miou_change']:+.4f}, {validation['images']} images)"
    )
