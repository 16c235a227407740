"""OpenVINO IR files (``best.xml`` + ``best.bin``): converted from the ONNX export, compiled for the CPU.

The IR holds float32 weights; bf16 is an *inference precision hint* OpenVINO applies when it compiles
the model, so it is chosen per CPU (AMX or AVX-512 BF16: ``BF16`` in the CPU plugin's
``OPTIMIZATION_CAPABILITIES``) and recorded in the sidecar (``openvino.inference_precision``), which
predictors compile with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from unet.utils.errors import ConfigError
from unet.utils.extras import requires_extra

PRECISIONS = ("auto", "f32", "bf16")


def import_openvino():
    """The ``openvino`` module, or one line naming the extra that installs it."""
    with requires_extra("openvino"):
        import openvino
    return openvino


def weights_file(xml: str | Path) -> Path:
    """``best.xml`` -> ``best.bin``: the weights every IR file needs beside it."""
    return Path(xml).with_suffix(".bin")


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AMX or AVX-512 BF16)."""
    capabilities = import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def inference_precision(requested: str) -> str:
    """``auto``: bf16 where the CPU has it, else f32; ``bf16`` refused on a CPU without it."""
    if requested not in PRECISIONS:
        raise ConfigError(f"openvino_precision={requested}: expected one of {', '.join(PRECISIONS)}")
    has_bf16 = cpu_has_bf16()
    if requested == "bf16" and not has_bf16:
        raise ConfigError(
            "openvino_precision=bf16: this CPU has no native bf16 (AMX or AVX-512 BF16); use auto or f32"
        )
    return requested if requested != "auto" else ("bf16" if has_bf16 else "f32")


def convert_onnx(onnx_path: Path, xml: Path) -> None:
    """Write the IR (``xml`` and its ``.bin``) of an ONNX file, weights kept in float32."""
    openvino = import_openvino()
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)


def compile_ir(xml: Path, precision: str = "f32") -> Callable[[np.ndarray], np.ndarray]:
    """Inputs -> the first output, run by OpenVINO on the CPU at ``precision`` with as many threads as
    torch uses here (the cores this process may run on)."""
    openvino = import_openvino()
    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    compiled = openvino.Core().compile_model(str(xml), "CPU", config)
    request = compiled.create_infer_request()

    def run(images: np.ndarray) -> np.ndarray:
        return request.infer([images])[0].copy()  # the request reuses its output buffer

    return run
