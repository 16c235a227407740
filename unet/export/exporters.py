"""One exporter per format, registered by name; each writes the file, checks it, and writes the sidecar.

ONNX and TorchScript files are checked after writing: the exported model runs on a random input of
an odd size and must match PyTorch's logits within ``tolerance``, or the export fails.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet.export.metadata import model_metadata, sidecar_path, write_metadata
from unet.training.checkpoint import module_from_checkpoint
from unet.utils.files import publish_new, read_json

EXPORTERS: dict[str, Callable[[nn.Module, Path, dict[str, Any], float], None]] = {}
DEFAULT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "weights": ".weights.pt"}
ONNX_OPSET = 18


class ExportError(RuntimeError):
    """An exported model that does not reproduce PyTorch's output, or a format that cannot hold it."""


def register_exporter(name: str):
    def decorator(function):
        EXPORTERS[name] = function
        return function

    return decorator


def check_input(in_channels: int, min_size: int, seed: int = 0) -> torch.Tensor:
    """A random ``(2, C, H, W)`` input with odd ``H != W`` above the minimum, so dynamic shapes are exercised."""
    height, width = 2 * min_size + 3, 3 * min_size + 5
    return torch.randn(2, in_channels, height, width, generator=torch.Generator().manual_seed(seed))


def compare_outputs(
    reference: torch.Tensor, exported: np.ndarray | torch.Tensor, what: str, tolerance: float
) -> float:
    exported = torch.as_tensor(np.asarray(exported))
    if exported.shape != reference.shape:
        raise ExportError(f"{what} returned shape {tuple(exported.shape)}, PyTorch {tuple(reference.shape)}")
    difference = (exported.float() - reference.float()).abs().max().item()
    if not difference <= tolerance:
        raise ExportError(
            f"{what} differs from PyTorch by {difference:.3g} (max abs logit), above {tolerance:g}"
        )
    return difference


@register_exporter("onnx")
def export_onnx(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> None:
    """ONNX (opset 18) through ``torch.export`` (the dynamo exporter, which handles ``max_unpool2d``),
    with dynamic batch, height and width; checked with onnxruntime."""
    import onnxruntime

    example = check_input(metadata["in_channels"], metadata["min_size"], seed=1)
    batch, height, width = (
        torch.export.Dim("batch", min=1),
        torch.export.Dim("height", min=metadata["min_size"]),
        torch.export.Dim("width", min=metadata["min_size"]),
    )
    program = torch.onnx.export(
        model,
        (example,),
        dynamic_shapes=({0: batch, 2: height, 3: width},),  # by position: forward may name it anything
        input_names=["images"],
        output_names=["logits"],
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,
    )
    program.save(str(path), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = check_input(metadata["in_channels"], metadata["min_size"])
    with torch.inference_mode():
        reference = model(images)
    metadata["check_max_abs_diff"] = compare_outputs(
        reference,
        session.run(["logits"], {"images": images.numpy()})[0],
        f"onnxruntime on {path.name}",
        tolerance,
    )
    metadata["opset"] = ONNX_OPSET


@register_exporter("torchscript")
def export_torchscript(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> None:
    """TorchScript by tracing (shape arithmetic is recorded, so other sizes work); checked on a new size."""
    example = check_input(metadata["in_channels"], metadata["min_size"], seed=1)
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but still what many deployments load; the user asked for it.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")
    images = check_input(metadata["in_channels"], metadata["min_size"])
    with torch.no_grad():
        reference, exported = model(images), loaded(images)
    metadata["check_max_abs_diff"] = compare_outputs(
        reference, exported, f"TorchScript {path.name}", tolerance
    )


@register_exporter("weights")
def export_weights(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> None:
    """The network's state dict alone (tensors only: loads with ``torch.load(weights_only=True)``).

    Rebuild with ``unet.models.build_network(metadata["net"])`` and ``load_state_dict``: the sidecar holds
    the network's complete config.
    """
    torch.save({name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.keys() != model.state_dict().keys():
        raise ExportError(f"{path} does not hold the model's parameters")


def training_metrics(ckpt_path: Path) -> dict[str, Any]:
    """``metrics.json`` of the run the checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    return read_json(ckpt_path.resolve().parent.parent / "metrics.json") or {}


def export_checkpoint(
    ckpt_path: str | Path, export_format: str, output: str | Path | None = None, tolerance: float = 1e-4
) -> tuple[Path, Path]:
    """Export a training checkpoint; returns the written file and its JSON sidecar.

    Nothing existing is overwritten: an existing ``output`` or sidecar is an error before anything is
    written. The file is exported and checked in a temporary folder beside ``output`` and only then
    moved into place, so a failed or killed export leaves neither half a file nor a file without sidecar.
    """
    if export_format not in EXPORTERS:
        raise ValueError(f"unknown export format {export_format!r}; valid: {', '.join(sorted(EXPORTERS))}")
    ckpt_path = Path(ckpt_path)
    output = Path(output) if output else ckpt_path.with_suffix(DEFAULT_SUFFIXES[export_format])
    existing = [str(path) for path in (output, sidecar_path(output)) if path.exists()]
    if existing:
        raise FileExistsError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "choose another output= (nothing was written)"
        )
    module, _ = module_from_checkpoint(ckpt_path)
    model = module.net.eval()
    metadata = model_metadata(module, training_metrics(ckpt_path), export_format)
    metadata["checkpoint"] = str(ckpt_path.resolve())
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.export-"))
    try:
        EXPORTERS[export_format](model, staging / output.name, metadata, tolerance)
        sidecar = write_metadata(staging / output.name, metadata)
        publish_new(sidecar, sidecar_path(output))
        try:
            publish_new(staging / output.name, output)
        except BaseException:
            sidecar_path(output).unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output, sidecar_path(output)
