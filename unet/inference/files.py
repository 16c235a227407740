"""Segment image files: read, predict, and write mask, colour overlay and probabilities."""

from __future__ import annotations

import glob
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from unet.data.io import IMAGE_EXTENSIONS, read_image
from unet.inference.predictors import Predictor
from unet.inference.tiling import predict_probabilities
from unet.utils.visualize import colourize


def collect_inputs(spec: str) -> list[Path]:
    """An image file, a folder of images, or a glob pattern -> the image files, sorted."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = sorted(
            Path(p) for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
        )
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found at {spec}")
    return files


def output_paths(image: Path, output_dir: Path, save_probabilities: bool) -> dict[str, Path]:
    paths = {
        "mask": output_dir / f"{image.stem}_mask.png",
        "overlay": output_dir / f"{image.stem}_overlay.png",
    }
    if save_probabilities:
        paths["probabilities"] = output_dir / f"{image.stem}_probs.npy"
    return paths


def check_outputs_free(inputs: Sequence[Path], output_dir: Path, save_probabilities: bool) -> None:
    """Refuse before any work if two inputs share a name or an output file already exists."""
    stems = [path.stem for path in inputs]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise ValueError(
            f"several inputs are named {duplicates[:5]}; their outputs would collide in {output_dir}"
        )
    existing = [
        p
        for image in inputs
        for p in output_paths(image, output_dir, save_probabilities).values()
        if p.exists()
    ]
    if existing:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; choose another output="
        )


def overlay(image: np.ndarray, mask: np.ndarray, ignore_index: int | None, alpha: float = 0.45) -> np.ndarray:
    """The image ``(H, W, C)`` in gray/RGB with the class colours blended over it: ``(H, W, 3)`` uint8."""
    base = image.astype(np.float32)
    if image.dtype != np.uint8:
        base = base * 255.0
    base = np.repeat(base, 3, axis=2) if base.shape[2] == 1 else base[..., :3]
    colours = colourize(torch.from_numpy(mask), ignore_index).permute(1, 2, 0).numpy().astype(np.float32)
    blended = np.where(mask[..., None] > 0, (1 - alpha) * base + alpha * colours, base)
    return blended.clip(0, 255).round().astype(np.uint8)


def predict_files(
    predictor: Predictor,
    inputs: Sequence[Path],
    output_dir: str | Path,
    tile_size: int = 512,
    overlap: float = 0.25,
    tta: bool = False,
    save_probabilities: bool = False,
    batch_size: int = 4,
    skip_errors: bool = False,
) -> dict[str, Any]:
    """Segment every input into ``output_dir``; returns a summary (images, seconds, images/s, failed).

    An input that cannot be read or segmented stops the run with its error, or with ``skip_errors``
    is listed in ``failed`` (``{"file", "error"}``) while the others are segmented: one corrupt file
    in a folder of thousands should not cost the rest.
    """
    metadata = predictor.metadata
    if save_probabilities and predictor.returns_mask:
        raise ValueError(
            f"save_probabilities=true: {predictor.source} returns class indices (exported with outputs=mask), "
            "not probabilities; use a logits export"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_outputs_free(inputs, output_dir, save_probabilities)
    failed: list[dict[str, str]] = []
    start = time.perf_counter()
    for path in tqdm(inputs, desc="predict", unit="image"):
        try:
            image = read_image(path, metadata["in_channels"])
            probabilities = predict_probabilities(
                predictor,
                predictor.prepare(image),
                metadata["num_classes"],
                metadata["min_size"],
                tile_size,
                overlap,
                tta,
                batch_size,
            )
        except Exception as error:  # noqa: BLE001 -- with skip_errors every failure is listed, none hidden
            if not skip_errors:
                raise
            failed.append({"file": str(path), "error": f"{type(error).__name__}: {error}"})
            continue
        mask = probabilities.argmax(axis=0).astype(np.uint8 if metadata["num_classes"] <= 256 else np.uint16)
        paths = output_paths(path, output_dir, save_probabilities)
        Image.fromarray(mask).save(paths["mask"])
        Image.fromarray(overlay(image, mask, metadata.get("ignore_index"))).save(paths["overlay"])
        if save_probabilities:
            np.save(paths["probabilities"], probabilities.astype(np.float16))
    seconds = time.perf_counter() - start
    done = len(inputs) - len(failed)
    return {
        "images": done,
        "seconds": seconds,
        "images_per_s": done / seconds if seconds else 0.0,
        "failed": failed,
    }
