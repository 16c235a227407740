"""Quantised copies of ONNX exports, and what quantising cost in size and logits.

``quantize=dynamic`` runs onnxruntime's dynamic quantisation: weights stored as 8-bit integers,
activations quantised on the fly per inference. ``quantize=static`` writes QDQ int8 (weights and
activations), its activation ranges calibrated on the run's training images
(:func:`unet.export.quality.calibration_images`). The int8 file is written beside the float one
(``best.onnx`` -> ``best.int8.onnx``, with its own sidecar), which stays: it is what the int8 file
is measured against, and what to ship where the accuracy change is too large. Its quality change on
the validation split is recorded as every form's is (:mod:`unet.export.quality`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from unet.export.preprocessing import example_input
from unet.utils.extras import requires_extra

QUANTIZED_INFIX = ".int8"
# Operators given integer weights. A U-Net is convolutions (ORT's default list also holds MatMul,
# Gather, ...: absent here); ConvInteger runs on CPU with uint8 weights only, hence the weight type.
DYNAMIC_OP_TYPES = ["Conv", "MatMul"]

# Calibration images ``(1, C, H, W)`` float32, normalised; static quantisation draws them, dynamic not.
Calibration = Callable[[], Iterable[np.ndarray]]
QUANTIZERS: dict[str, Callable[[Path, Path, Calibration], dict[str, Any]]] = {}


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
def quantize_dynamic(source: Path, target: Path, calibration: Calibration) -> dict[str, Any]:
    """onnxruntime's ``quantize_dynamic``: int8 weights, activations quantised per inference."""
    with requires_extra("export"):
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(source, target, op_types_to_quantize=DYNAMIC_OP_TYPES, weight_type=QuantType.QUInt8)
    return {"method": "dynamic", "op_types": DYNAMIC_OP_TYPES, "weight_type": "uint8"}


@register_quantizer("static")
def quantize_static(source: Path, target: Path, calibration: Calibration) -> dict[str, Any]:
    """onnxruntime's ``quantize_static`` in QDQ form: int8 weights per output channel and uint8
    activations whose ranges (min-max) come from the calibration images, after onnxruntime's
    pre-processing (ONNX shape inference and graph optimisation), as its documentation asks; its
    symbolic shape inference is skipped: it gives up on the dynamic sizes of deeper U-Nets."""
    with requires_extra("export"):
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
        from onnxruntime.quantization import quantize_static as ort_quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

    images = iter(calibration())
    count = 0

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            nonlocal count
            image = next(images, None)
            count += image is not None
            return None if image is None else {"images": image}

    prepared = target.with_name(f"{target.stem}.prepared.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    try:
        ort_quantize_static(
            prepared, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)
    return {
        "method": "static",
        "format": "QDQ",
        "calibration_images": count,
        "activation_type": "uint8",
        "weight_type": "int8",
        "per_channel": True,
    }


def onnx_logits(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Normalised float32 ``(B, C, H, W)`` -> logits ``(B, K, H, W)`` of an ONNX file, on the CPU."""
    with requires_extra("export"):
        import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images})[0]


def quantize_onnx(
    method: str, source: Path, target: Path, metadata: dict[str, Any], calibration: Calibration
) -> dict[str, Any]:
    """Write ``target``, the quantised ``source``; returns the sidecar's ``quantization`` record: the
    method, both files and sizes, and the max abs logit difference on a random input."""
    record = QUANTIZERS[method](source, target, calibration)
    images = example_input(metadata).numpy()
    difference = float(np.abs(onnx_logits(target)(images) - onnx_logits(source)(images)).max())
    return {
        **record,
        "file": target.name,
        "float_file": source.name,
        "bytes": {"float32": source.stat().st_size, "int8": target.stat().st_size},
        "max_abs_logit_diff": difference,
    }


def describe_quantization(report: dict[str, Any]) -> str:
    """One line: the method and the sizes."""
    return f"{report['method']}: {report['bytes']['float32']:,} -> {report['bytes']['int8']:,} bytes"
