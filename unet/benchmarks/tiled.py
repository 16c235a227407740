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

With a trained checkpoint (``tiled.checkpoint``) the image is a mosaic of its validation images
(:mod:`~unet.benchmarks.subjects`), and each runner's class map of it is scored against their labels:
the mIoU change against MONAI's is the quality change at equal tiles and overlap.

Many small photos are measured apart (:func:`measure_small_images`): images/s of ``unet-predict``'s
work on files (:func:`~unet.inference.predict_files`: read, segment, write mask and overlay) one image
per forward pass as before, and with images batched (``batch_images``).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from unet.benchmarks.settings import TiledSettings
from unet.benchmarks.subjects import Subject, normalise
from unet.export.exporters import export_onnx
from unet.export.openvino_ir import compile_ir, convert_onnx, cpu_has_bf16
from unet.export.quantize import quantize_static
from unet.inference.files import images_per_batch, predict_files, segment_image
from unet.inference.predictors import Predictor, TorchRunner, onnx_runner
from unet.inference.tiling import TilingSettings
from unet.profiling.costs import peak_memory_bytes
from unet.profiling.machine import cpu_flags, machine_name
from unet.training.metrics import SegmentationScores
from unet.utils.class_maps import class_map
from unet.utils.extras import MissingExtraError, requires_extra
from unet.utils.tables import text_table

log = logging.getLogger(__name__)
# The runner of the network exactly as MONAI runs it (no folding, its memory layout).
AS_LOADED = "pytorch, as loaded"


def monai_masks(
    model: nn.Module, image: np.ndarray, subject: Subject, settings: TiledSettings, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """MONAI's sliding window over the whole normalised image: the class map and the probabilities."""
    with requires_extra("baselines"):
        from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(normalise(image, subject.mean, subject.std))[None].to(device)
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
    return class_map(probabilities, dim=0).to(torch.uint8).cpu().numpy(), probabilities.cpu().numpy()


def ours(
    predictor: Predictor, image: np.ndarray, settings: TiledSettings, probabilities: np.ndarray | None = None
) -> np.ndarray:
    """Our tiled segmentation of the image as read (tiles normalised as cut), as ``unet-predict`` runs it."""
    tiling = (settings.tile_size, settings.overlap, False, settings.batch_size)
    return segment_image(predictor, image, *tiling, probabilities)


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


def exported_runners(subject: Subject, settings: TiledSettings, workdir: Path) -> dict[str, Callable]:
    """The deployment forms ``unet-export`` writes, run on the CPU: the ONNX export in onnxruntime, its
    static int8 (QDQ) copy, and the OpenVINO IR in f32 (and bf16 where the CPU has it natively)."""
    metadata = {"in_channels": settings.in_channels, "num_classes": settings.num_classes, "min_size": 32}
    path = workdir / "model.onnx"
    export_onnx(subject.net, path, dict(metadata), tolerance=1e-3)
    found = {"onnxruntime": onnx_runner(path, "cpu")}
    if settings.int8:
        quantize_static(path, workdir / "model.int8.onnx", lambda: subject.calibration)
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


def predictors(subject: Subject, settings: TiledSettings, device: str, workdir: Path) -> dict[str, Predictor]:
    """Our ways of running the network: PyTorch as loaded (MONAI's network exactly), the inference form
    checkpoints run in (conv-BatchNorm folded, the faster memory layout here), and on the CPU its
    exported forms (:func:`exported_runners`)."""
    metadata = {
        "in_channels": settings.in_channels, "num_classes": settings.num_classes, "min_size": 1,
        "mean": subject.mean, "std": subject.std, "ignore_index": subject.ignore_index,
    }  # fmt: skip
    found = {
        AS_LOADED: Predictor(TorchRunner(subject.net, device), metadata, workdir),
        "pytorch, inference form": Predictor(
            TorchRunner(subject.net, device, True, "auto"), metadata, workdir
        ),
    }
    if settings.onnx and device == "cpu":
        for name, run in exported_runners(subject, settings, workdir).items():
            found[name] = Predictor(run, metadata, workdir)
    return found


def equal_output(
    runners: dict[str, Predictor], subject: Subject, settings: TiledSettings, device: str
) -> dict[str, dict[str, Any]]:
    """Each runner's largest probability difference from MONAI's on a crop of 2.5 tiles a side (every
    kind of overlap, edge and corner); this also warms every runner up (kernels, layout choice, threads)."""
    crop = subject.image[: settings.tile_size * 5 // 2, : settings.tile_size * 5 // 2]
    _, reference = monai_masks(subject.net, crop, subject, settings, device)
    found = {}
    for name, predictor in runners.items():
        probabilities = np.empty_like(reference)
        ours(predictor, crop, settings, probabilities)
        difference = float(np.abs(probabilities - reference).max())
        found[name] = {
            "max_probability_difference": difference,
            "equal_within_tolerance": difference <= settings.tolerance,
        }
    return found


def quality(mask: np.ndarray, subject: Subject) -> dict[str, float]:
    """mIoU and pixel accuracy of a class map of the subject's image against its labels."""
    scores = SegmentationScores(subject.class_names, subject.ignore_index)
    scores.update(
        torch.from_numpy(mask.astype(np.int64))[None], torch.from_numpy(subject.labels.astype(np.int64))[None]
    )
    computed = scores.compute()
    return {"miou": computed["miou"], "pixel_accuracy": computed["pixel_acc"]}


def measure_tiled_inference(subject: Subject, settings: TiledSettings, device: str = "cpu") -> dict[str, Any]:
    """Megapixels/s and peak memory of MONAI and of each of our runners on the subject's large image,
    with the equality checks and, where it has labels, each one's quality; the first row is MONAI's.
    Seconds are the median of ``settings.rounds`` runs taken in turn, peak memory the largest."""
    model = subject.net.eval().to(device)
    image = subject.image
    megapixels = image.shape[0] * image.shape[1] / 1e6
    with tempfile.TemporaryDirectory() as directory:
        runners = predictors(subject, settings, device, Path(directory))
        monai = "MONAI sliding_window_inference"
        calls = {monai: lambda: monai_masks(model, image, subject, settings, device)[0]}
        calls.update(
            {name: (lambda p=predictor: ours(p, image, settings)) for name, predictor in runners.items()}
        )
        rows = {name: {"runner": name} for name in calls}
        for name, found in equal_output(runners, subject, settings, device).items():
            rows[name].update(found)
        # The runners take turns, round after round: the machine's drift touches them all alike.
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
        for _ in range(settings.rounds):
            for name, call in calls.items():
                samples[name].append(timed(call, device))
        small_images = measure_small_images(runners, subject, settings)
    monai_mask = samples[monai][-1]["mask"]
    for name, row in rows.items():
        row["seconds"] = statistics.median(sample["seconds"] for sample in samples[name])
        for key in ("peak_mb", "gpu_peak_mb"):
            if key in samples[name][0]:
                row[key] = max(sample[key] for sample in samples[name])
        if name in runners:
            row["mask_agreement"] = float((samples[name][-1]["mask"] == monai_mask).mean())
        if subject.labels is not None:
            row.update(quality(samples[name][-1]["mask"], subject))
    rows = list(rows.values())
    for row in rows:
        row["megapixels_per_s"] = megapixels / row["seconds"]
        row["vs_monai"] = rows[0]["seconds"] / row["seconds"]
        if "miou" in row:
            row["miou_change"] = row["miou"] - rows[0]["miou"]
            row["within_quality_tolerance"] = abs(row["miou_change"]) <= settings.quality_tolerance
    return {
        "subject": subject.description,
        "image": list(image.shape),
        "megapixels": megapixels,
        "rows": rows,
        "small_images": small_images,
    }


def write_photos(photos: list[np.ndarray], folder: Path) -> list[Path]:
    """The photos as PNG files, as a user's folder holds them."""
    folder.mkdir()
    paths = []
    for index, photo in enumerate(photos):
        paths.append(folder / f"photo{index:04d}.png")
        Image.fromarray(photo[..., 0] if photo.shape[2] == 1 else photo).save(paths[-1])
    return paths


def measure_small_images(
    runners: dict[str, Predictor], subject: Subject, settings: TiledSettings
) -> dict[str, Any]:
    """Images/s of ``unet-predict``'s work on a folder of ``settings.small_images`` photos
    (:func:`~unet.inference.predict_files`: read, segment, write mask and overlay) by each runner that
    ``unet-predict`` runs (all but :data:`AS_LOADED`), one
    image per forward pass (before images were batched) and batched, with the peak memory above the
    start and the pixels whose class agrees with PyTorch's inference form's one by one (the reference).
    Median of ``settings.rounds`` runs taken in turn (the first pays the warm-up of the new shapes)."""
    reference_name = "pytorch, inference form, one by one"
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        inputs = write_photos(subject.photos, folder / "photos")
        tiling = {
            "tile_size": settings.tile_size,
            "overlap": settings.overlap,
            "batch_size": settings.batch_size,
        }
        calls = {}
        for name, predictor in runners.items():
            if name == AS_LOADED:  # MONAI's form of the network, not one unet-predict runs
                continue
            for label, batched in (("one by one", False), ("batched", True)):
                calls[f"{name}, {label}"] = lambda out, p=predictor, b=batched: predict_files(
                    p, inputs, out, batch_images=b, **tiling
                )
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
        for round_index in range(settings.rounds):
            for index, (name, call) in enumerate(calls.items()):
                out = folder / f"out{round_index}-{index}"
                samples[name].append(timed(lambda c=call, o=out: c(o), "cpu") | {"out": out})
        masks = {
            name: [read_mask(sample["out"], path) for path in inputs]
            for name, sample in ((n, s[-1]) for n, s in samples.items())
        }
    rows = []
    for name in calls:
        seconds = statistics.median(sample["seconds"] for sample in samples[name])
        agreement = np.mean(
            [(a == b).mean() for a, b in zip(masks[name], masks[reference_name], strict=True)]
        )
        rows.append({
            "runner": name, "seconds": seconds, "images_per_s": len(inputs) / seconds,
            "peak_mb": max(sample["peak_mb"] for sample in samples[name]), "mask_agreement": float(agreement),
        })  # fmt: skip
    reference = next(row for row in rows if row["runner"] == reference_name)
    for row in rows:
        row["vs_one_by_one"] = row["images_per_s"] / reference["images_per_s"]
    height, width = settings.small_size
    per_pass = images_per_batch(
        (height, width), TilingSettings(settings.tile_size, settings.overlap, False, settings.batch_size)
    )
    return {"count": len(inputs), "size": [height, width], "images_per_pass": per_pass, "rows": rows}


def read_mask(folder: Path, image: Path) -> np.ndarray:
    with Image.open(folder / f"{image.stem}_mask.png") as mask:
        return np.asarray(mask)


def run_tiled(subject: Subject, settings: TiledSettings, device: str = "cpu") -> dict[str, Any]:
    """:func:`measure_tiled_inference` with the machine it ran on, as the JSON report ``unet-benchmark`` writes."""
    settings = replace(settings, in_channels=subject.image.shape[2], num_classes=len(subject.class_names))
    return {
        "machine": machine_name(device),
        "cpu_flags": cpu_flags(),
        **measure_tiled_inference(subject, settings, device),
    }


def format_tiled(report: Mapping[str, Any], settings: TiledSettings) -> str:
    """The machine and the tiled-inference table."""
    rows = report["rows"]
    columns = [
        ("runner", "runner", "{}"),
        ("seconds", "seconds", "{:.1f}"),
        ("megapixels/s", "megapixels_per_s", "{:.2f}"),
        ("vs MONAI", "vs_monai", "{:.2f}x"),
        ("peak memory MB", "peak_mb", "{:,.0f}"),
        *([("GPU memory MB", "gpu_peak_mb", "{:,.0f}")] if "gpu_peak_mb" in rows[0] else []),
        ("max prob. diff", "max_probability_difference", "{:.1e}"),
        ("equal masks", "mask_agreement", "{:.4%}"),
        *(
            [("mIoU", "miou", "{:.4f}"), ("mIoU change", "miou_change", "{:+.4f}")]
            if "miou" in rows[0]
            else []
        ),
    ]
    height, width, channels = report["image"]
    head = (
        f"tiled inference of a {height}x{width}x{channels} image ({report['megapixels']:.1f} megapixels; "
        f"{report['subject']}): tiles {settings.tile_size}, overlap {settings.overlap}, Gaussian blending, "
        f"batch {settings.batch_size}; median of {settings.rounds} rounds taken in turn"
    )
    machine = f"{report['machine']} ({report['cpu_flags']})"
    return f"{machine}\n{head}\n{text_table(columns, rows, rule=True)}\n\n{format_small(report)}"


def format_small(report: Mapping[str, Any]) -> str:
    """The many-small-images table: unet-predict's images/s on files, one by one and batched."""
    small = report["small_images"]
    height, width = small["size"]
    columns = [
        ("runner", "runner", "{}"),
        ("seconds", "seconds", "{:.1f}"),
        ("images/s", "images_per_s", "{:.2f}"),
        ("vs one by one", "vs_one_by_one", "{:.2f}x"),
        ("peak memory MB", "peak_mb", "{:,.0f}"),
        ("equal masks", "mask_agreement", "{:.4%}"),
    ]
    head = (
        f"unet-predict on {small['count']} image files of {height}x{width} (read, segment, write mask and "
        f"overlay): one per forward pass (before) or batched, {small['images_per_pass']} per pass; "
        "'one by one' is pytorch, inference form, one by one"
    )
    return f"{head}\n{text_table(columns, small['rows'], rule=True)}"
