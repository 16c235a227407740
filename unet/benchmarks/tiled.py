"""Tiled inference on a large image, measured against MONAI's ``sliding_window_inference``
(``unet-benchmark mode=tiled``): megapixels per second and peak memory, at equal output.

Both run the same network on the same image with the same tiles, overlap and Gaussian weighting
(MONAI's ``mode="gaussian", sigma_scale=0.125``), blending softmax probabilities. MONAI gets the whole
image normalised as one tensor, as its users call it; ours cuts tiles from the pixels as read and
streams them into the class map (:func:`~unet.inference.tiling.segment_tiled`). Equal output is checked
on a crop of 2.5 tiles a side (every kind of overlap, edge and corner): probabilities within
``tolerance``; on the whole image the class maps are compared pixel by pixel. The deployment forms
``unet-export`` writes run beside them (onnxruntime, its static int8 copy, OpenVINO): for them the
probability difference and the pixels whose class differs from MONAI's are the quality change.

Many small photos are measured apart (:func:`measure_small_images`): images/s segmenting them one by
one, as ``unet-predict`` does, and ``small_batch_size`` images per forward pass
(:func:`~unet.inference.files.segment_images`).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet.benchmarks.settings import TiledSettings
from unet.export.exporters import export_onnx
from unet.export.openvino_ir import compile_ir, convert_onnx, cpu_has_bf16
from unet.export.quantize import quantize_static
from unet.inference.files import segment_images
from unet.inference.predictors import Predictor, TorchRunner, onnx_runner
from unet.inference.tiling import segment_tiled
from unet.profiling.costs import peak_memory_bytes
from unet.profiling.machine import cpu_flags, machine_name
from unet.utils.extras import MissingExtraError, requires_extra
from unet.utils.tables import text_table

log = logging.getLogger(__name__)


def synthetic_scan(size: int, channels: int, seed: int = 0) -> np.ndarray:
    """A ``(size, size, channels)`` uint8 image of smooth blobs and noise: as fast to segment as any other."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 64 + 2, size // 64 + 2, channels)).astype(np.float32)
    blobs = np.repeat(np.repeat(coarse, 64, axis=0), 64, axis=1)[:size, :size]
    return np.clip(blobs + rng.normal(0, 20, blobs.shape), 0, 255).astype(np.uint8)


def normalised(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(C, H, W)`` float32 in [0, 1] (mean 0, std 1: the benchmark's network is untrained)."""
    return image.transpose(2, 0, 1).astype(np.float32) / 255.0


def monai_masks(
    model: nn.Module, image: np.ndarray, settings: TiledSettings, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """MONAI's sliding window over the whole normalised image: the class map and the probabilities."""
    with requires_extra("baselines"):
        from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(normalised(image))[None].to(device)
    with torch.inference_mode():
        probabilities = sliding_window_inference(
            inputs,
            roi_size=(settings.tile_size, settings.tile_size),
            sw_batch_size=settings.batch_size,
            predictor=lambda tiles: torch.softmax(model(tiles), dim=1),
            overlap=settings.overlap,
            mode="gaussian",
            sigma_scale=0.125,
        )[0]
    return probabilities.argmax(0).to(torch.uint8).cpu().numpy(), probabilities.cpu().numpy()


def ours(
    predictor: Predictor, image: np.ndarray, settings: TiledSettings, probabilities: np.ndarray | None = None
) -> np.ndarray:
    """Our tiled segmentation of the image as read (tiles normalised as cut)."""
    return segment_tiled(
        predictor.logits, image.transpose(2, 0, 1), settings.num_classes, 1, settings.tile_size, settings.overlap,
        batch_size=settings.batch_size, prepare=lambda tile: tile.astype(np.float32) / 255.0,
        probabilities=probabilities,
    )  # fmt: skip


def timed(fn: Callable[[], np.ndarray], device: str) -> dict[str, Any]:
    """Seconds, peak host memory and (on a GPU) peak GPU memory of ``fn()``, in MiB above what was in
    use before; and its class map."""
    result: dict[str, Any] = {}

    def call() -> None:
        start = time.perf_counter()
        result["mask"] = fn()
        result["seconds"] = time.perf_counter() - start

    def on_host() -> None:
        result["peak_mb"] = peak_memory_bytes(call, "cpu") / 2**20

    if device.startswith("cuda"):
        result["gpu_peak_mb"] = peak_memory_bytes(on_host, device) / 2**20
    else:
        on_host()
    return result


def calibration_tiles(settings: TiledSettings) -> list[np.ndarray]:
    """Four tiles ``(1, C, T, T)`` of another synthetic image: what static int8 calibrates on."""
    size = settings.tile_size
    image = synthetic_scan(2 * size, settings.in_channels, settings.seed + 1)
    return [normalised(image[y : y + size, x : x + size])[None] for y in (0, size) for x in (0, size)]


def exported_runners(model: nn.Module, settings: TiledSettings, workdir: Path) -> dict[str, Callable]:
    """The deployment forms ``unet-export`` writes, run on the CPU: the ONNX export in onnxruntime, its
    static int8 (QDQ) copy, and the OpenVINO IR in f32 (and bf16 where the CPU has it natively)."""
    metadata = {"in_channels": settings.in_channels, "num_classes": settings.num_classes, "min_size": 32}
    path = workdir / "model.onnx"
    export_onnx(model, path, dict(metadata), tolerance=1e-3)
    found = {"onnxruntime": onnx_runner(path, "cpu")}
    if settings.int8:
        quantize_static(path, workdir / "model.int8.onnx", lambda: calibration_tiles(settings))
        found["onnxruntime, static int8"] = onnx_runner(workdir / "model.int8.onnx", "cpu")
    if settings.openvino:
        try:
            convert_onnx(path, workdir / "model.xml")  # checked below, as every runner, against MONAI
        except MissingExtraError as error:
            log.warning("OpenVINO left out: %s", error)
            return found
        found["openvino"] = compile_ir(workdir / "model.xml", "f32")
        if cpu_has_bf16():
            found["openvino, bf16"] = compile_ir(workdir / "model.xml", "bf16")
    return found


def predictors(model: nn.Module, settings: TiledSettings, device: str, workdir: Path) -> dict[str, Predictor]:
    """Our ways of running ``model``: PyTorch as loaded (MONAI's network exactly), the inference form
    checkpoints run in (conv-BatchNorm folded, the faster memory layout here), and on the CPU its
    exported forms (:func:`exported_runners`)."""
    channels = settings.in_channels
    # mean 0, std 1: prepare divides by 255 alone, as normalised() does for MONAI
    metadata = {"in_channels": channels, "num_classes": settings.num_classes, "min_size": 1, "mean": [0.0] * channels, "std": [1.0] * channels}  # fmt: skip
    found = {
        "pytorch, as loaded": Predictor(TorchRunner(model, device), metadata, workdir),
        "pytorch, inference form": Predictor(TorchRunner(model, device, True, "auto"), metadata, workdir),
    }
    if settings.onnx and device == "cpu":
        for name, run in exported_runners(model, settings, workdir).items():
            found[name] = Predictor(run, metadata, workdir)
    return found


def measure_tiled_inference(model: nn.Module, settings: TiledSettings, device: str = "cpu") -> dict[str, Any]:
    """Megapixels/s and peak memory of MONAI and of each of our runners on one large synthetic image,
    with the equality checks; the first row is MONAI's. Seconds are the median of ``settings.rounds``
    runs taken in turn, peak memory the largest."""
    model = model.eval().to(device)
    image = synthetic_scan(settings.size, settings.in_channels, settings.seed)
    crop = image[: settings.tile_size * 5 // 2, : settings.tile_size * 5 // 2]
    megapixels = image.shape[0] * image.shape[1] / 1e6
    with tempfile.TemporaryDirectory() as directory:
        runners = predictors(model, settings, device, Path(directory))
        calls = {"MONAI sliding_window_inference": lambda: monai_masks(model, image, settings, device)[0]}
        calls.update(
            {name: (lambda p=predictor: ours(p, image, settings)) for name, predictor in runners.items()}
        )
        rows = {name: {"runner": name} for name in calls}
        # Equal output, on a crop (this also warms every runner up: kernels, layout choice, threads).
        _, reference = monai_masks(model, crop, settings, device)
        for name, predictor in runners.items():
            probabilities = np.empty_like(reference)
            ours(predictor, crop, settings, probabilities)
            difference = float(np.abs(probabilities - reference).max())
            rows[name].update(
                max_probability_difference=difference, equal_within_tolerance=difference <= settings.tolerance
            )
        # The runners take turns, round after round: the machine's drift touches them all alike.
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
        for _ in range(settings.rounds):
            for name, call in calls.items():
                samples[name].append(timed(call, device))
        small_images = measure_small_images(model, runners, settings, device)
    monai_mask = samples["MONAI sliding_window_inference"][-1]["mask"]
    for name, row in rows.items():
        row["seconds"] = statistics.median(sample["seconds"] for sample in samples[name])
        for key in ("peak_mb", "gpu_peak_mb"):
            if key in samples[name][0]:
                row[key] = max(sample[key] for sample in samples[name])
        if name in runners:
            row["mask_agreement"] = float((samples[name][-1]["mask"] == monai_mask).mean())
    rows = list(rows.values())
    for row in rows:
        row["megapixels_per_s"] = megapixels / row["seconds"]
        row["vs_monai"] = rows[0]["seconds"] / row["seconds"]
    return {
        "image": [settings.size, settings.size, settings.in_channels],
        "megapixels": megapixels,
        "rows": rows,
        "small_images": small_images,
    }


def measure_small_images(
    model: nn.Module, runners: dict[str, Predictor], settings: TiledSettings, device: str
) -> dict[str, Any]:
    """Images/s of ``settings.small_images`` photos of ``small_size``: MONAI's sliding window and each of
    our runners one image at a time (as ``unet-predict`` segments files today), and each runner with
    ``small_batch_size`` images per forward pass; pixels whose class agrees with MONAI's. Median of
    ``settings.rounds`` runs taken in turn (the first pays the warm-up of the new shapes)."""
    height, width = settings.small_size
    images = [
        synthetic_scan(max(height, width), settings.in_channels, settings.seed + 2 + index)[:height, :width]
        for index in range(settings.small_images)
    ]
    monai = "MONAI sliding_window_inference, one by one"
    calls = {monai: lambda: [monai_masks(model, image, settings, device)[0] for image in images]}
    for name, predictor in runners.items():
        calls[f"{name}, one by one"] = lambda p=predictor: [ours(p, image, settings) for image in images]
        calls[f"{name}, batched"] = lambda p=predictor: segment_images(p, images, settings.small_batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    masks: dict[str, list[np.ndarray]] = {}
    for _ in range(settings.rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            masks[name] = call()
            seconds[name].append(time.perf_counter() - start)
    rows = [
        {
            "runner": name,
            "seconds": statistics.median(seconds[name]),
            "images_per_s": len(images) / statistics.median(seconds[name]),
            "mask_agreement": float(
                np.mean([(a == b).mean() for a, b in zip(masks[name], masks[monai], strict=True)])
            ),
        }
        for name in calls
    ]
    today = next(row for row in rows if row["runner"] == "pytorch, inference form, one by one")
    for row in rows:
        row["vs_today"] = row["images_per_s"] / today["images_per_s"]
    return {
        "count": len(images),
        "size": [height, width],
        "batch_size": settings.small_batch_size,
        "rows": rows,
    }


def run_tiled(model: nn.Module, settings: TiledSettings, device: str = "cpu") -> dict[str, Any]:
    """:func:`measure_tiled_inference` with the machine it ran on, as the JSON report ``unet-benchmark`` writes."""
    return {
        "machine": machine_name(device),
        "cpu_flags": cpu_flags(),
        **measure_tiled_inference(model, settings, device),
    }


def format_tiled(report: Mapping[str, Any], settings: TiledSettings) -> str:
    """The machine and the tiled-inference table."""
    columns = [
        ("runner", "runner", "{}"),
        ("seconds", "seconds", "{:.1f}"),
        ("megapixels/s", "megapixels_per_s", "{:.2f}"),
        ("vs MONAI", "vs_monai", "{:.2f}x"),
        ("peak memory MB", "peak_mb", "{:,.0f}"),
        *([("GPU memory MB", "gpu_peak_mb", "{:,.0f}")] if "gpu_peak_mb" in report["rows"][0] else []),
        ("max prob. diff", "max_probability_difference", "{:.1e}"),
        ("equal masks", "mask_agreement", "{:.4%}"),
    ]
    size, _, channels = report["image"]
    head = (
        f"tiled inference of a {size}x{size}x{channels} image ({report['megapixels']:.1f} megapixels): "
        f"tiles {settings.tile_size}, overlap {settings.overlap}, Gaussian blending, batch {settings.batch_size}; "
        f"median of {settings.rounds} rounds taken in turn"
    )
    machine = f"{report['machine']} ({report['cpu_flags']})"
    return f"{machine}\n{head}\n{text_table(columns, report['rows'], rule=True)}\n\n{format_small(report)}"


def format_small(report: Mapping[str, Any]) -> str:
    """The many-small-images table: images/s one by one and batched."""
    small = report["small_images"]
    height, width = small["size"]
    columns = [
        ("runner", "runner", "{}"),
        ("seconds", "seconds", "{:.1f}"),
        ("images/s", "images_per_s", "{:.2f}"),
        ("vs today", "vs_today", "{:.2f}x"),
        ("equal masks", "mask_agreement", "{:.4%}"),
    ]
    head = (
        f"{small['count']} images of {height}x{width}, one by one (today's unet-predict) or "
        f"{small['batch_size']} per forward pass; 'today' is pytorch, inference form, one by one"
    )
    return f"{head}\n{text_table(columns, small['rows'], rule=True)}"
