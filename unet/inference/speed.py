"""A model file's speed on this machine: megapixels per second of tiled prediction, at batch 1 and at
the best of a few batch sizes, with the CPU named (what ``unet-export`` records in each sidecar and
``unet-predict runtime_choice=auto`` compares)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet.inference.files import segment_image
from unet.inference.predictors import load_predictor
from unet.profiling.machine import cpu_flags, cpu_model

# The runtime that runs each model file, by suffix; every other file is run by PyTorch.
RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino"}


def runtime_of(path: str | Path) -> str:
    return RUNTIMES.get(Path(path).suffix.lower(), "pytorch")


@dataclass(frozen=True)
class SpeedSettings:
    """The image timed and how: ``measure`` in ``configs/deploy/export.yaml``."""

    image_size: int = 1024  # a square image of noise: speed does not depend on what it shows
    tile_size: int = 512
    overlap: float = 0.25
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)  # tiles per forward pass
    rounds: int = 2  # timed runs per batch size; the fastest counts (the first pays the warm-up)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))


def measure_speed(path: str | Path, settings: SpeedSettings) -> dict[str, Any]:
    """Megapixels/s of ``path`` segmenting one image tiled as ``unet-predict`` does, per batch size; the
    sidecar's ``speed`` record (the CPU, its vector extensions and torch's thread count with it)."""
    predictor = load_predictor(path)
    channels = predictor.metadata["in_channels"]
    size = settings.image_size
    image = np.random.default_rng(0).integers(0, 256, (size, size, channels), dtype=np.uint8)
    megapixels = size * size / 1e6
    by_batch = {}
    for batch in settings.batch_sizes:
        seconds = []
        for _ in range(settings.rounds):
            start = time.perf_counter()
            segment_image(predictor, image, settings.tile_size, settings.overlap, batch_size=batch)
            seconds.append(time.perf_counter() - start)
        by_batch[str(batch)] = megapixels / min(seconds)
    best = max(by_batch, key=by_batch.__getitem__)
    return {
        "runtime": runtime_of(path),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "image": [size, size],
        "tile_size": settings.tile_size,
        "overlap": settings.overlap,
        "megapixels_per_s_by_batch": by_batch,
        "megapixels_per_s_batch1": by_batch.get("1"),
        "best_batch": int(best),
        "megapixels_per_s": by_batch[best],
    }
