"""One exporter per format, registered by name; each writes the file, checks it, and returns it loaded
back as a runner; the sidecar is written beside it.

ONNX, OpenVINO IR, TorchScript and ``torch.export`` (pt2) files are checked after writing: the exported
model runs on a random input of another size than the one it was exported at and must match PyTorch's
logits within ``tolerance``, or the export fails. Every form's sidecar records its quality change on the
validation split (:mod:`unet.export.quality`) and, when the caller measures it, its speed here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet.export.metadata import model_metadata, write_metadata
from unet.export.openvino_ir import compile_ir, convert_onnx, inference_precision, weights_file
from unet.export.preprocessing import check_embedding_options, embed_preprocessing, example_input
from unet.export.quality import Runner, calibration_images, describe_quality, validation_quality
from unet.export.quantize import QUANTIZERS, describe_quantization, onnx_logits, quantize_onnx, quantized_path
from unet.models.loading import LoadedModel, load_checkpoint, sidecar_path
from unet.utils.errors import ConfigError, OutputExistsError
from unet.utils.extras import requires_extra
from unet.utils.files import publish_new, read_json

log = logging.getLogger(__name__)

# (model, path, sidecar, tolerance) -> the written file loaded back, as a runner of its inputs.
EXPORTERS: dict[str, Callable[[nn.Module, Path, dict[str, Any], float], Runner]] = {}
DEFAULT_SUFFIXES: dict[str, str] = {}
# Formats whose graph can hold the uint8 normalisation and the argmax (embed_preprocessing=true).
EMBEDDING_FORMATS: set[str] = set()
ONNX_OPSET = 18


class ExportError(RuntimeError):
    """An exported model that does not reproduce PyTorch's output, or a format that cannot hold it."""


def register_exporter(name: str, suffix: str, embeds_preprocessing: bool = False):
    """Register ``name`` with its default file suffix, and whether it can embed the preprocessing."""

    def decorator(function):
        EXPORTERS[name] = function
        DEFAULT_SUFFIXES[name] = suffix
        if embeds_preprocessing:
            EMBEDDING_FORMATS.add(name)
        return function

    return decorator


def dynamic_axes(metadata: dict[str, Any], min_size: int | None = None) -> dict[int, torch.export.Dim]:
    """Batch, height and width of the input as dynamic dims, by position (forward may name its argument
    anything); height and width from ``min_size`` (the network's minimum) up: below it, predictors pad."""
    height_axis = 1 if metadata.get("input", {}).get("layout") == "bhwc" else 2
    min_size = min_size or metadata["min_size"]
    return {
        0: torch.export.Dim("batch", min=1),
        height_axis: torch.export.Dim("height", min=min_size),
        height_axis + 1: torch.export.Dim("width", min=min_size),
    }


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


def compare_masks(
    logits: torch.Tensor, exported: np.ndarray | torch.Tensor, what: str, tolerance: float
) -> int:
    """Class indices ``(B, H, W)`` against PyTorch's argmax of ``logits`` ``(B, K, H, W)``; returns the
    pixels that differ. Only pixels whose top two logits lie within ``tolerance`` (a tie the export's
    rounding may break either way) may differ."""
    exported, reference = torch.as_tensor(np.asarray(exported)), logits.argmax(dim=1)
    if exported.shape != reference.shape:
        raise ExportError(f"{what} returned shape {tuple(exported.shape)}, PyTorch {tuple(reference.shape)}")
    top = logits.topk(2, dim=1).values
    differ = exported.long() != reference
    wrong = int((differ & (top[:, 0] - top[:, 1] > tolerance)).sum())
    if wrong:
        raise ExportError(f"{what} gives other classes than PyTorch at {wrong} of {reference.numel()} pixels")
    return int(differ.sum())


def record_parity(
    model: nn.Module,
    run: Callable[[torch.Tensor], Any],
    metadata: dict[str, Any],
    what: str,
    tolerance: float,
) -> None:
    """Run the exported model (``run``) and ``model`` at a size other than the export's; record the logit
    difference (``check_max_abs_diff``), or for a mask model the pixels at ties (``check_pixels_differing``)."""
    images = example_input(metadata, check=True)
    with torch.inference_mode():
        exported = run(images)
        if metadata.get("output", {}).get("kind") == "mask":
            metadata["check_pixels_differing"] = compare_masks(
                model.logits(images), exported, what, tolerance
            )
        else:
            metadata["check_max_abs_diff"] = compare_outputs(model(images), exported, what, tolerance)


@register_exporter("onnx", ".onnx", embeds_preprocessing=True)
def export_onnx(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> Runner:
    """ONNX (opset 18) through ``torch.export`` (the dynamo exporter, which handles ``max_unpool2d``),
    with dynamic batch, height and width; checked with onnxruntime."""
    with requires_extra("export"):
        import onnxruntime
        import onnxscript  # noqa: F401 -- what torch.onnx.export(dynamo=True) runs on

    output_name = metadata.get("output", {}).get("name", "logits")
    program = torch.onnx.export(
        model,
        (example_input(metadata),),
        dynamic_shapes=(dynamic_axes(metadata),),
        input_names=["images"],
        output_names=[output_name],
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,
    )
    program.save(str(path), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    record_parity(
        model,
        lambda images: session.run([output_name], {"images": images.numpy()})[0],
        metadata,
        f"onnxruntime on {path.name}",
        tolerance,
    )
    metadata["opset"] = ONNX_OPSET
    return lambda images: session.run([output_name], {"images": images})[0]


@register_exporter("openvino", ".xml", embeds_preprocessing=True)
def export_openvino(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> Runner:
    """OpenVINO IR (``best.xml`` + ``best.bin``), converted from the ONNX export with its dynamic batch,
    height and width; checked in float32, then run at the sidecar's ``openvino.inference_precision``
    (bf16 where the CPU has it: its logit difference is recorded, its effect is the quality change)."""
    onnx_path = path.with_suffix(".onnx")
    export_onnx(model, onnx_path, dict(metadata), tolerance)
    convert_onnx(onnx_path, path)
    onnx_path.unlink()
    exact = compile_ir(path)
    record_parity(model, lambda images: exact(images.numpy()), metadata, f"OpenVINO {path.name}", tolerance)
    precision = metadata["openvino"]["inference_precision"]
    run = compile_ir(path, precision)
    if precision != "f32":
        images = example_input(metadata, check=True)
        with torch.inference_mode():
            reference = model(images).numpy()
        metadata["openvino"]["max_abs_logit_diff"] = float(np.abs(run(images.numpy()) - reference).max())
    return run


def export_program(model: nn.Module, metadata: dict[str, Any]) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` with dynamic batch, height and width; raises ``metadata["min_size"]``
    where the program needs larger inputs.

    Sizes are traced size-obliviously (as ``torch.onnx`` does), so shape arithmetic that eager code
    branches on (crop or pad an odd skip) stays general instead of being specialised to the example's
    parity. A network whose bottleneck export cannot let be 1 pixel (CARAFE's) is exported from twice
    the minimum size, where it is at least 2; smaller images are padded to that by predictors.
    """
    example, minimum = example_input(metadata), metadata["min_size"]
    for min_size in (minimum, 2 * minimum):
        try:
            with torch.fx.experimental._config.patch(backed_size_oblivious=True):
                program = torch.export.export(
                    model, (example,), dynamic_shapes=(dynamic_axes(metadata, min_size),)
                )
        except torch._dynamo.exc.UserError as error:  # a size constraint the dims above violate
            problem = error
            continue
        metadata["min_size"] = min_size
        return program
    raise ExportError(
        f"torch.export cannot keep height and width dynamic from {minimum} or {2 * minimum} pixels: "
        + str(problem).splitlines()[0]
    )


@register_exporter("pt2", ".pt2", embeds_preprocessing=True)
def export_pt2(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> Runner:
    """A ``torch.export`` program (``torch.export.load(path).module()`` runs it; TorchScript's successor
    upstream), with dynamic batch, height and width; loaded back and checked at another size."""
    torch.export.save(export_program(model, metadata), str(path))
    loaded = torch.export.load(str(path)).module()
    record_parity(model, loaded, metadata, f"torch.export program {path.name}", tolerance)
    return torch_runner(loaded)


@register_exporter("torchscript", ".pt")
def export_torchscript(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> Runner:
    """TorchScript by tracing (shape arithmetic is recorded, so other sizes work); checked on a new size."""
    example = example_input(metadata)
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but still what many deployments load; the user asked for it.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")
    record_parity(model, loaded, metadata, f"TorchScript {path.name}", tolerance)
    return torch_runner(loaded)


@register_exporter("weights", ".weights.pt")
def export_weights(model: nn.Module, path: Path, metadata: dict[str, Any], tolerance: float) -> Runner:
    """The network's state dict alone (tensors only: loads with ``torch.load(weights_only=True)``).

    ``unet.models.load_model`` loads it back (rebuilt with ``unet.models.build_network(metadata["net"])``
    and ``load_state_dict``: the sidecar holds the network's complete config).
    """
    torch.save({name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.keys() != model.state_dict().keys():
        raise ExportError(f"{path} does not hold the model's parameters")
    return torch_runner(model)


def torch_runner(model: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    """Arrays in, arrays out, of a PyTorch model or program."""

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(images)).numpy()

    return run


def training_metrics(ckpt_path: Path) -> dict[str, Any]:
    """``metrics.json`` of the run the checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    return read_json(ckpt_path.resolve().parent.parent / "metrics.json") or {}


def check_options(
    export_format: str, embed: bool, input_layout: str | None, outputs: str, quantize: str | None
) -> str:
    """Refuse an unknown format or an option the format cannot honour; returns the input layout."""
    if export_format not in EXPORTERS:
        raise ConfigError(f"unknown export format {export_format!r}; valid: {', '.join(sorted(EXPORTERS))}")
    if embed and export_format not in EMBEDDING_FORMATS:
        raise ConfigError(
            f"embed_preprocessing=true: format={export_format} cannot hold it; "
            f"use format={' or format='.join(sorted(EMBEDDING_FORMATS))}"
        )
    if quantize is not None:
        if quantize not in QUANTIZERS:
            raise ConfigError(f"quantize={quantize}: expected null or one of {', '.join(sorted(QUANTIZERS))}")
        if export_format != "onnx":
            raise ConfigError(
                f"quantize={quantize}: only format=onnx is quantised (onnxruntime), not {export_format}"
            )
        if embed:
            raise ConfigError(
                f"quantize={quantize} is measured on float inputs: export it with embed_preprocessing=false"
            )
    return check_embedding_options(embed, input_layout, outputs)


def companions(path: Path) -> list[Path]:
    """``path`` and the files it needs beside it (an OpenVINO IR's weights)."""
    return [path, weights_file(path)] if path.suffix == DEFAULT_SUFFIXES["openvino"] else [path]


def publish_all(pairs: list[tuple[Path, Path]]) -> None:
    """Move each staged file to its place (none may exist); a failure takes back the ones already moved."""
    published: list[Path] = []
    try:
        for staged, target in pairs:
            published.append(publish_new(staged, target))
    except BaseException:
        for target in published:
            target.unlink(missing_ok=True)
        raise


def refuse_existing(targets: list[Path]) -> None:
    """An existing output, companion or sidecar is an error before anything is written."""
    existing = [str(path) for target in targets for path in [*companions(target), sidecar_path(target)]]
    existing = [path for path in existing if Path(path).exists()]
    if existing:
        raise OutputExistsError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "choose another output= (nothing was written)"
        )


def read_calibration(
    quantize: str | None, metadata: dict[str, Any], checkpoint: dict[str, Any], ckpt_path: Path, count: int
) -> list[np.ndarray]:
    """The training images static quantisation calibrates on, read before anything is exported."""
    if quantize != "static":
        return []
    try:
        return list(calibration_images(metadata, checkpoint, ckpt_path, count))
    except Exception as error:  # noqa: BLE001 -- whatever keeps the data from being read, said in one line
        raise ConfigError(
            f"quantize=static calibrates on the run's training images, which cannot be read here: "
            f"{type(error).__name__}: {error}; use quantize=dynamic"
        ) from None


def stage_forms(
    model: nn.Module,
    staged: list[Path],
    metadata: dict[str, Any],
    tolerance: float,
    quantize: str | None,
    calibration: list[np.ndarray],
) -> dict[Path, tuple[dict[str, Any], Runner]]:
    """Export to ``staged[0]`` (and quantise into ``staged[1]``); each file's sidecar and runner."""
    forms = {staged[0]: (metadata, EXPORTERS[metadata["format"]](model, staged[0], metadata, tolerance))}
    if quantize:
        report = quantize_onnx(quantize, staged[0], staged[1], metadata, lambda: calibration)
        log.info("quantised copy %s: %s", staged[1].name, describe_quantization(report))
        quantized = {key: value for key, value in metadata.items() if key != "check_max_abs_diff"}
        forms[staged[1]] = ({**quantized, "quantization": report}, onnx_logits(staged[1]))
        metadata["quantized_copy"] = report
    return forms


def record_quality(
    forms: dict[Path, tuple[dict[str, Any], Runner]],
    network: nn.Module,
    checkpoint: dict[str, Any],
    ckpt_path: Path,
) -> None:
    """Each form's ``quality`` on the validation split against the checkpoint's network."""
    metadata = next(iter(forms.values()))[0]
    if metadata["embed_preprocessing"]:
        for sidecar, _ in forms.values():
            sidecar["quality"] = {
                "skipped": "takes uint8 pixels: measure a plain export (embed_preprocessing=false)"
            }
        return
    runs = {path.name: run for path, (_, run) in forms.items()}
    qualities = validation_quality(runs, torch_runner(network), metadata, checkpoint, ckpt_path)
    for path, (sidecar, _) in forms.items():
        sidecar["quality"] = qualities[path.name]
        log.info("%s: %s", path.name, describe_quality(sidecar["quality"]))


def export_checkpoint(
    ckpt_path: str | Path,
    export_format: str,
    output: str | Path | None = None,
    tolerance: float = 1e-4,
    embed: bool = False,
    input_layout: str | None = None,
    outputs: str = "logits",
    quantize: str | None = None,
    openvino_precision: str = "auto",
    calibration_count: int = 32,
    measure_speed: Callable[[Path], dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Export a training checkpoint; returns the written file and its JSON sidecar.

    ``embed`` (``embed_preprocessing``) exports the network behind the uint8 normalisation
    (:mod:`unet.export.preprocessing`; ``input_layout`` ``bhwc``/``bchw``, ``outputs`` ``logits``/``mask``).
    ``quantize`` (ONNX only) also writes an int8 copy beside it (``best.int8.onnx``, with its own sidecar;
    ``static`` calibrates on ``calibration_count`` training images) (:mod:`unet.export.quantize`).
    ``openvino_precision`` (OpenVINO only) is the inference precision its sidecar asks for.
    Every sidecar records its ``quality`` on the validation split, and with ``measure_speed`` (a file ->
    its speed record, given the staged file with its sidecar) its ``speed``, and the checkpoint's.

    Nothing existing is overwritten: an existing ``output`` or sidecar is an error before anything is
    written. The files are exported and checked in a temporary folder beside ``output`` and only then
    moved into place, so a failed or killed export leaves neither half a file nor a file without sidecar.
    """
    layout = check_options(export_format, embed, input_layout, outputs, quantize)
    ckpt_path = Path(ckpt_path)
    output = Path(output) if output else ckpt_path.with_suffix(DEFAULT_SUFFIXES[export_format])
    targets = [output, *([quantized_path(output)] if quantize else [])]
    refuse_existing(targets)
    checkpoint = load_checkpoint(ckpt_path)  # exports are made from training checkpoints only
    loaded = LoadedModel.from_checkpoint(checkpoint, ckpt_path)
    metadata = model_metadata(loaded, training_metrics(ckpt_path), export_format)
    metadata["checkpoint"] = str(ckpt_path.resolve())
    if export_format == "openvino":
        metadata["openvino"] = {"inference_precision": inference_precision(openvino_precision)}
    calibration = read_calibration(quantize, metadata, checkpoint, ckpt_path, calibration_count)
    model = embed_preprocessing(loaded.network, metadata, layout, outputs) if embed else loaded.network
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.export-"))
    try:
        staged = [staging / target.name for target in targets]
        forms = stage_forms(model, staged, metadata, tolerance, quantize, calibration)
        record_quality(forms, loaded.network, checkpoint, ckpt_path)
        if measure_speed is not None:
            record_speed(forms, measure_speed, ckpt_path)
        for path, (sidecar, _) in forms.items():
            write_metadata(path, sidecar)
        publish_all(
            [(sidecar_path(path), sidecar_path(target)) for path, target in zip(staged, targets, strict=True)]
            + [
                pair
                for path, target in zip(staged, targets, strict=True)
                for pair in zip(companions(path), companions(target), strict=True)
            ]
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output, sidecar_path(output)


def record_speed(
    forms: dict[Path, tuple[dict[str, Any], Runner]],
    measure_speed: Callable[[Path], dict[str, Any]],
    ckpt_path: Path,
) -> None:
    """Each form's ``speed`` here, with the checkpoint's beside it (what ``runtime_choice=auto`` compares)."""
    checkpoint_speed = measure_speed(ckpt_path)
    for path, (sidecar, _) in forms.items():
        write_metadata(path, sidecar)  # the predictor that is timed reads it
        sidecar["speed"] = {**measure_speed(path), "checkpoint": checkpoint_speed}
