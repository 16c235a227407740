"""How a model's cost grows with the image: time and peak memory at batch 1, with and without checkpointing.

A user who trains on large images needs two answers before the first run: how long a step takes at
their size, and whether it fits in memory, and at what size gradient checkpointing of the encoder
(``model.net.checkpoint_encoder``) becomes worth its extra forward pass. ``unet-benchmark mode=scaling``
prints this table; on a GPU, sizes past the card's memory are reported as out of memory.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from unet.benchmarks.settings import SCALING_SIZES, BenchmarkSettings
from unet.benchmarks.speed import MeasuredNets, machine_line, machine_record, settings_record
from unet.profiling.costs import InputSpec, inference_latency, peak_memory_bytes, training_step
from unet.profiling.machine import default_device
from unet.profiling.timing import median_seconds
from unet.utils.tables import text_table

log = logging.getLogger(__name__)

# The scaling table's measured columns, in order.
SCALING_COLUMNS = ("train_s", "train_peak_memory_mb", "infer_s", "infer_peak_memory_mb")


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


def run_scaling(settings: BenchmarkSettings, nets: Mapping[str, Callable[..., nn.Module]]) -> dict[str, Any]:
    """The scaling of one model (``scaling_model``: the bilinear one of ``nets``, else the first; see
    :class:`~unet.benchmarks.speed.MeasuredNets`), as the JSON report ``unet-benchmark`` writes.

    ``settings.scaling_sizes`` are the sides, ``rounds`` and ``warmup`` the timed and untimed steps,
    ``scaling_bf16`` trains under bf16 autocast.
    """
    device = torch.device(default_device(settings.device))
    torch.manual_seed(0)
    measured = MeasuredNets(settings, nets)
    name = measured.main
    rows = measure_scaling(
        lambda checkpoint_encoder: measured.build(name, checkpoint_encoder=checkpoint_encoder),
        settings.scaling_sizes, settings.in_channels, settings.num_classes, device,
        steps=settings.rounds, warmup=settings.warmup, bf16=settings.scaling_bf16,
    )  # fmt: skip
    return {
        "machine": machine_record(device),
        "settings": settings_record(settings),
        "scaling_model": name,
        "scaling": rows,
    }


def _cell(row: Mapping[str, Any], key: str) -> str:
    if row["out_of_memory"]:
        return "out of memory"
    return "failed" if "error" in row else f"{row[key]:.3f}"


def format_scaling(report: Mapping[str, Any]) -> str:
    """The scaling report as a text table: one row per (size, checkpointing)."""
    rows = [{**row, **{key: _cell(row, key) for key in SCALING_COLUMNS}} for row in report["scaling"]]
    formats = dict.fromkeys(["size", "checkpoint_encoder", *SCALING_COLUMNS], "{}")
    return "\n".join(
        [
            machine_line(report),
            f"scaling ({report['scaling_model']}, batch 1; seconds per step or image, peak memory in MiB):",
            text_table([(key, key, fmt) for key, fmt in formats.items()], rows),
        ]
    )
