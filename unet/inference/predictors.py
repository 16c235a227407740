"""Run a trained model from any of its forms: training checkpoint, ONNX, OpenVINO IR, TorchScript,
``torch.export`` program (pt2) or plain weights.

Every predictor prepares an image as read into its model's input (:meth:`Predictor.prepare`) and maps
such inputs ``(B, C, H, W)`` to logits ``(B, K, H, W)``; it carries the metadata (channels,
normalisation, classes, minimum size, input and output forms) needed for both.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet.data.transforms import normalize_image
from unet.export.metadata import model_metadata
from unet.export.openvino_ir import compile_ir, weights_file
from unet.models.batchnorm_folding import fold_batch_norms
from unet.models.loading import load_model, read_sidecar
from unet.models.safe_loading import CheckpointError, inspect_file, wrong_kind
from unet.utils.errors import ConfigError, InputFileError, InputNotFoundError
from unet.utils.extras import requires_extra
from unet.utils.layouts import MEMORY_FORMATS
from unet.utils.normalization import channel_tensor

log = logging.getLogger(__name__)


class Predictor:
    """``predictor(images)`` -> logits, with ``predictor.metadata`` describing the model.

    Most models take normalised float32 images. A model exported with ``embed_preprocessing=true``
    (its sidecar's ``input`` is uint8) normalises inside itself and gets the pixels as read, in its
    layout; one exported with ``outputs=mask`` returns class indices, which come back here as
    log-probabilities (0 for the predicted class, -inf for the others), so tiling and TTA blend them as
    votes and the argmax is the model's own.
    """

    def __init__(
        self, run: Callable[[np.ndarray], np.ndarray], metadata: dict[str, Any], source: Path
    ) -> None:
        self.run = run
        self.metadata = metadata
        self.source = source
        self.input = metadata.get("input", {})  # older sidecars: no layout nor kind (float BCHW -> logits)
        self.takes_pixels = self.input.get("dtype") == "uint8"
        self.returns_mask = metadata.get("output", {}).get("kind") == "mask"

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An image as read ``(H, W, C)`` uint8/float32 -> this model's input ``(C, H, W)``: normalised
        float32, or the uint8 pixels for a model that normalises them itself."""
        if not self.takes_pixels:
            mean, std = channel_tensor(self.metadata["mean"]), channel_tensor(self.metadata["std"])
            return normalize_image(image, mean, std).numpy()
        if image.dtype != np.uint8:
            raise InputFileError(
                f"{self.source} takes uint8 pixels (exported with embed_preprocessing=true), but the image "
                f"reads as {image.dtype} (16-bit or float); use the checkpoint or a plain export"
            )
        return image.transpose(2, 0, 1)

    def logits(self, images: np.ndarray) -> np.ndarray | torch.Tensor:
        """As calling it, but a PyTorch model's logits stay a tensor on its device (no copy back)."""
        if isinstance(self.run, TorchRunner) and not self.takes_pixels and not self.returns_mask:
            return self.run.tensor(np.ascontiguousarray(images, dtype=np.float32))
        return self(images)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Inputs ``(B, C, H, W)`` as :meth:`prepare` makes them (in any float dtype) -> logits
        ``(B, K, H, W)`` float32."""
        if not self.takes_pixels:
            return self.run(np.ascontiguousarray(images, dtype=np.float32))
        pixels = images.astype(np.uint8)  # exact: tiling hands prepare's uint8 values on as float32
        if self.input.get("layout") == "bhwc":
            pixels = pixels.transpose(0, 2, 3, 1)
        outputs = self.run(np.ascontiguousarray(pixels))
        if not self.returns_mask:
            return outputs
        classes = np.arange(self.metadata["num_classes"])[None, :, None, None]
        return np.where(outputs[:, None] == classes, 0.0, -np.inf).astype(np.float32)


# The layouts a predictor takes: ``auto`` times the first batch in each of MEMORY_FORMATS.
PREDICT_MEMORY_FORMATS = ("auto", *MEMORY_FORMATS)


class TorchRunner:
    """Run ``model`` (in eval mode already: an exported program cannot switch) on ``device``: arrays in,
    arrays out, or with :meth:`tensor` the logits left on the device (tiling blends them there).

    ``optimise`` (for a plain ``nn.Module``, not a scripted or exported program) runs its inference
    form: a copy with every conv-BatchNorm pair folded into one conv, the same outputs up to float
    rounding. ``memory_format`` ``auto`` times the first batch in both layouts and keeps the faster:
    which layout is faster depends on the CPU, so the machine decides (``unet-benchmark mode=tiled``
    measures both).
    """

    def __init__(
        self, model: torch.nn.Module, device: str, optimise: bool = False, memory_format: str = "contiguous"
    ) -> None:
        check_memory_format(memory_format)
        self.model = (fold_batch_norms(model) if optimise else model).to(device)
        self.device = device
        self.memory_format = memory_format
        if memory_format == "channels_last":
            self.model = self.model.to(memory_format=torch.channels_last)

    def tensor(self, images: np.ndarray) -> torch.Tensor:
        inputs = torch.from_numpy(images).to(self.device)
        with torch.inference_mode():
            if self.memory_format == "auto":
                return self._choose_layout(inputs)
            if self.memory_format == "channels_last":
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            return self.model(inputs)

    def _choose_layout(self, inputs: torch.Tensor) -> torch.Tensor:
        """The first batch's logits; it is run in both layouts (after a warm-up of each), and the faster
        one is kept for every later batch."""
        channels_last = copy.deepcopy(self.model).to(memory_format=torch.channels_last)
        last_inputs = inputs.contiguous(memory_format=torch.channels_last)
        # Warm-up (thread pools, kernel choice per shape): the whole batch on a GPU, where it is cheap;
        # one image of it on a CPU (any smaller crop could be below the network's minimum size).
        warm = slice(None) if self.device.startswith("cuda") else slice(0, 1)
        self.model(inputs[warm])
        channels_last(last_inputs[warm])
        start = time.perf_counter()
        logits = self.model(inputs)
        _synchronize(self.device)
        contiguous_s = time.perf_counter() - start
        start = time.perf_counter()
        channels_last(last_inputs)
        _synchronize(self.device)
        channels_last_s = time.perf_counter() - start
        if channels_last_s < contiguous_s:
            self.model, self.memory_format = channels_last, "channels_last"
        else:
            self.memory_format = "contiguous"
        log.info(
            "memory format %s for inference: a batch took %.3f s contiguous, %.3f s channels-last",
            self.memory_format, contiguous_s, channels_last_s,
        )  # fmt: skip
        return logits

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.tensor(images).float().cpu().numpy()


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def from_model_file(path: Path, device: str, memory_format: str = "auto") -> Predictor:
    """A model ``unet.models.load_model`` reads: a checkpoint or plain weights (the network rebuilt, run
    folded in ``memory_format``), or a TorchScript or ``torch.export`` program (run as exported)."""
    loaded = load_model(path)
    if loaded.kind in ("checkpoint", "weights"):
        runner = TorchRunner(loaded.network, device, True, memory_format)
    else:
        runner = TorchRunner(loaded.network, device)
    metadata = loaded.sidecar if loaded.sidecar is not None else model_metadata(loaded, None, "checkpoint")
    return Predictor(runner, metadata, path)


def onnx_runner(path: Path, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """Run an ONNX file in onnxruntime, with as many threads as torch uses here (the cores this process
    may run on: onnxruntime's own default counts every core of the machine)."""
    with requires_extra("export"):
        import onnxruntime

    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device.startswith("cuda")
        else ["CPUExecutionProvider"]
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime's own error types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"{path} is not a readable ONNX model: {str(error).splitlines()[0]}") from None
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(images: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: images})[0]

    return run


def from_onnx(path: Path, device: str, memory_format: str = "auto") -> Predictor:
    """An ONNX file in onnxruntime (``memory_format`` is onnxruntime's own choice)."""
    kind = inspect_file(path)
    if kind != "onnx":
        raise wrong_kind(path, kind, "an ONNX model (unet-export format=onnx)")
    check_onnx_weights(path)
    return Predictor(onnx_runner(path, device), read_sidecar(path), path)


def check_onnx_weights(path: Path) -> None:
    """Refuse an ONNX model whose weights (initializers) hold NaN or an infinity, naming the tensor."""
    with requires_extra("export"):
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


def from_openvino(path: Path, device: str, memory_format: str = "auto") -> Predictor:
    """An OpenVINO IR (``.xml`` and its ``.bin``) compiled for the CPU at the inference precision its
    sidecar records (``memory_format`` is OpenVINO's own choice)."""
    if device != "cpu":
        raise ConfigError(f"device={device}: {path} is an OpenVINO IR, run here on the CPU; use device=cpu")
    if not weights_file(path).is_file():
        raise InputNotFoundError(f"{path} is an OpenVINO IR without its weights {weights_file(path).name}")
    metadata = read_sidecar(path)
    precision = metadata.get("openvino", {}).get("inference_precision", "f32")
    return Predictor(compile_ir(path, precision), metadata, path)


# Model files by suffix whose loader is not unet.models.load_model's (checkpoints, programs, weights).
LOADERS: dict[str, Callable[[Path, str, str], Predictor]] = {".onnx": from_onnx, ".xml": from_openvino}


def load_predictor(path: str | Path, device: str = "cpu", memory_format: str = "auto") -> Predictor:
    """A predictor for a ``.ckpt`` checkpoint, an ``.onnx`` export, an ``.xml`` OpenVINO IR, a ``.pt2``
    torch.export program or a ``.pt`` TorchScript/weights export. ``memory_format`` (``auto``: the faster
    here, timed on the first batch; ``contiguous``; ``channels_last``) applies to the networks rebuilt from
    weights (checkpoints and weights exports); the other forms run as they were exported."""
    check_memory_format(memory_format)
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"model not found: {path}")
    return LOADERS.get(path.suffix.lower(), from_model_file)(path, device, memory_format)


def check_memory_format(memory_format: str) -> None:
    """Refuse a layout a predictor cannot run, in one line naming the key."""
    if memory_format not in PREDICT_MEMORY_FORMATS:
        raise ConfigError(
            f"memory_format={memory_format!r}: expected one of {', '.join(PREDICT_MEMORY_FORMATS)}"
        )
