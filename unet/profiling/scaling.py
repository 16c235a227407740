"""How a model's cost grows with the image: time and peak memory at batch 1, with and without checkpointing.

A user who trains on large images needs two answers before the first run: how long a step takes at
their size, and whether it fits in memory, and at what size gradient checkpointing of the encoder
(``model.net.checkpoint_encoder``) becomes worth its extra forward pass. ``unet-benchmark scaling=true``
prints this table; on a GPU, sizes past the card's memory are reported as out of memory.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from unet.profiling.costs import InputSpec, inference_latency, peak_memory_bytes, training_step
from unet.profiling.timing import median_seconds

log = logging.getLogger(__name__)

# The sides (pixels) measured by default: each doubles the last, so memory grows about 4x a row.
SCALING_SIZES = (256, 512, 1024, 2048)


def _inference_peak_mb(model: nn.Module, spec: InputSpec, device: torch.device) -> float:
    """Peak memory (MiB) of one batch-1 forward in inference mode, the model's weights not counted."""
    working = copy.deepcopy(model).eval()
    image = spec.images(device, batch_size=1)

    def infer() -> None:
        with torch.inference_mode():
            working(image)

    return peak_memory_bytes(infer, device) / 2**20


def _row(
    model: nn.Module, spec: InputSpec, device: torch.device, steps: int, warmup: int, bf16: bool
) -> dict[str, Any]:
    """Training step and inference times (s) and peak memories (MiB) of one image of ``spec``."""
    step = training_step(model, spec, device=device, autocast_dtype=torch.bfloat16 if bf16 else None)
    train_peak = peak_memory_bytes(step, device) / 2**20  # the first step: AdamW's state is created in it
    train_s = median_seconds(step, steps, warmup, device)
    del step
    return {
        "train_s": train_s,
        "train_peak_memory_mb": train_peak,
        "infer_s": inference_latency(model, spec, repeats=steps, warmup=warmup, device=device),
        "infer_peak_memory_mb": _inference_peak_mb(model, spec, device),
    }


def measure_scaling(
    build: Callable[..., nn.Module],
    sizes: Sequence[int] = SCALING_SIZES,
    in_channels: int = 1,
    num_classes: int = 2,
    device: str | torch.device = "cpu",
    steps: int = 3,
    warmup: int = 1,
    bf16: bool = False,
) -> list[dict[str, Any]]:
    """One row per (checkpointing, size): seconds and peak MiB of a training step and of inference.

    ``build(checkpoint_encoder=)`` makes the network (a :class:`~unet.models.UNet` with
    ``in_channels`` inputs and ``num_classes`` outputs). ``bf16`` trains
    under bf16 autocast. On CUDA a size that runs out of memory gives a row with
    ``out_of_memory: true``, and the larger sizes are not tried (so does another runtime error, as
    ``error``, e.g. a kernel's 32-bit index limit); on the CPU the operating system kills a process
    out of memory, so choose ``sizes`` that fit.
    """
    device = torch.device(device)
    rows = []
    for checkpoint in (False, True):
        model = build(checkpoint_encoder=checkpoint).to(device)
        for size in sorted(sizes):
            spec = InputSpec(in_channels, num_classes, size, size, batch_size=1)
            row: dict[str, Any] = {"size": size, "checkpoint_encoder": checkpoint}
            try:
                row |= _row(model, spec, device, steps, warmup, bf16)
            except torch.OutOfMemoryError:
                rows.append({**row, "out_of_memory": True})
                break
            except RuntimeError as error:  # e.g. a kernel's 32-bit indexing limit at a huge size
                log.warning("scaling: %d px failed: %s", size, error)
                rows.append({**row, "out_of_memory": False, "error": str(error).splitlines()[0][:200]})
                break
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            log.info(
                "scaling: %d px, checkpoint_encoder=%s: %.3f s per training step",
                size,
                checkpoint,
                row["train_s"],
            )
            rows.append({**row, "out_of_memory": False})
    return rows
