"""Run a trained model from any of its forms: training checkpoint, ONNX, TorchScript or plain weights.

Every predictor maps normalised images ``(B, C, H, W)`` float32 to logits ``(B, K, H, W)`` and carries the
metadata (channels, normalisation, classes, minimum size) needed to prepare its input.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet.export.metadata import model_metadata, read_metadata
from unet.models.networks import build_network
from unet.training.checkpoint import (
    CheckpointError,
    inspect_file,
    load_weights,
    module_from_checkpoint,
    non_finite_tensor,
    wrong_kind,
)


class Predictor:
    """``predictor(images)`` -> logits, with ``predictor.metadata`` describing the model."""

    def __init__(
        self, run: Callable[[np.ndarray], np.ndarray], metadata: dict[str, Any], source: Path
    ) -> None:
        self.run = run
        self.metadata = metadata
        self.source = source

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Normalised ``(B, C, H, W)`` float32 -> logits ``(B, K, H, W)`` float32."""
        return self.run(np.ascontiguousarray(images, dtype=np.float32))


def torch_runner(model: torch.nn.Module, device: str) -> Callable[[np.ndarray], np.ndarray]:
    model = model.to(device).eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(images).to(device)).float().cpu().numpy()

    return run


def from_checkpoint(path: Path, device: str) -> Predictor:
    module, _ = module_from_checkpoint(path)
    metadata = model_metadata(module, None, "checkpoint")
    return Predictor(torch_runner(module.net, device), metadata, path)


def from_onnx(path: Path, device: str) -> Predictor:
    import onnxruntime

    kind = inspect_file(path)
    if kind != "onnx":
        raise wrong_kind(path, kind, "an ONNX model (unet-export format=onnx)")
    check_onnx_weights(path)
    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device.startswith("cuda")
        else ["CPUExecutionProvider"]
    )
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime's own error types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"{path} is not a readable ONNX model: {str(error).splitlines()[0]}") from None
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(images: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: images})[0]

    return Predictor(run, read_metadata(path), path)


def check_onnx_weights(path: Path) -> None:
    """Refuse an ONNX model whose weights (initializers) hold NaN or an infinity, naming the tensor."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # a protobuf decoding error
        raise CheckpointError(f"{path} is not a readable ONNX model: {str(error).splitlines()[0]}") from None
    for initializer in model.graph.initializer:
        values = numpy_helper.to_array(initializer)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise CheckpointError(
                f"{path} holds non-finite values (NaN or Inf) in {initializer.name}: this model is unusable"
            )


def from_torch_file(path: Path, device: str) -> Predictor:
    """A ``.pt`` from unet-export: TorchScript, or plain weights rebuilt into a UNet from the sidecar."""
    metadata = read_metadata(path)
    if metadata.get("format") == "weights":
        # unet 0.1's sidecars held the U-Net's options as "unet".
        config = (
            metadata["net"] if "net" in metadata else {"_target_": "unet.models.UNet", **metadata["unet"]}
        )
        model = build_network(config)
        model.load_state_dict(load_weights(path))  # intact, tensors only, finite
    else:
        kind = inspect_file(path)  # intact: torch.jit.load checks no checksums either
        if kind != "torchscript":
            raise wrong_kind(path, kind, f"a TorchScript archive (the format its sidecar {path}.json names)")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            model = torch.jit.load(str(path), map_location=device)
        name = non_finite_tensor(model.state_dict())
        if name is not None:
            raise CheckpointError(
                f"{path} holds non-finite values (NaN or Inf) in {name}: this model is unusable"
            )
    return Predictor(torch_runner(model, device), metadata, path)


LOADERS: dict[str, Callable[[Path, str], Predictor]] = {
    ".ckpt": from_checkpoint,
    ".onnx": from_onnx,
    ".pt": from_torch_file,
    ".pth": from_torch_file,
}


def load_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    """A predictor for a ``.ckpt`` checkpoint, an ``.onnx`` export or a ``.pt`` TorchScript/weights export."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ValueError(
            f"cannot tell the model format of {path}: expected one of {', '.join(sorted(LOADERS))}"
        )
    return loader(path, device)
