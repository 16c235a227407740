"""Speed levers: each setting that could make training, inference or data delivery faster, against its baseline."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from unet.data.base import default_num_workers
from unet.models.batchnorm_folding import fold_batch_norms
from unet.profiling.costs import inference_latency, training_step, training_throughput
from unet.profiling.data import data_throughput, folder_datamodule, synthetic_datamodule, write_png_folder
from unet.profiling.timing import StepSample, efficiency, images_per_s, interleaved_samples
from unet.utils.layouts import MEMORY_FORMATS
from unet.utils.runtime import reuse_freed_memory

if TYPE_CHECKING:
    from unet.profiling.benchmark import BenchmarkSettings


def without_inplace_activations(model: nn.Module) -> nn.Module:
    """A copy whose activations allocate their outputs instead of overwriting their inputs."""
    copy_ = copy.deepcopy(model)
    for module in copy_.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return copy_


def latency_s(
    model: nn.Module, settings: BenchmarkSettings, device: torch.device, channels_last: bool
) -> float:
    """Seconds per image at batch 1 at the benchmark's size (see :func:`~unet.profiling.costs.inference_latency`)."""
    return inference_latency(
        model, settings.spec, repeats=settings.repeats, warmup=settings.warmup, device=device,
        channels_last=channels_last,
    )  # fmt: skip


def cudnn_benchmark(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with cuDNN's per-shape algorithm search on (what ``trainer.benchmark=true`` turns on)."""

    def with_search() -> None:
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            run()
        finally:
            torch.backends.cudnn.benchmark = before

    return with_search


def measure_levers(
    result: dict[str, Any],
    model: nn.Module,
    samples: dict[Hashable, list[StepSample]],
    data_rate: float,
    settings: BenchmarkSettings,
    device: torch.device,
    train_transforms: Sequence[Any],
) -> list[dict[str, Any]]:
    """Each speed lever against the baseline (fp32, eager, the model's better memory format).

    Training levers are compared in images/s, inference ones in latency, data ones in images/s. Training
    levers are sampled in turn with the baseline, and their speedups are ratios of drift-corrected rates
    (see :func:`~unet.profiling.timing.efficiency`); bf16 on a CPU without bf16 instructions is so slow
    that one step tells. ``result`` is the model's row of the benchmark, ``samples`` the benchmark's
    training samples keyed by (model, layout), ``data_rate`` the in-process delivery rate. The
    allocator lever switches freed-memory reuse for its steps and restores ``settings.reuse_freed_memory``.
    """
    name = result["model"]
    channels_last = result["memory_format"] == "channels_last"
    reuse = settings.reuse_freed_memory

    def step(candidate: nn.Module = model, **options: Any) -> Callable[[], None]:
        return training_step(candidate, settings.spec, device=device, channels_last=channels_last, **options)

    def allocator(reuse_memory: bool, run: Callable[[], None]) -> Callable[[], None]:
        def with_allocator() -> None:
            reuse_freed_memory(reuse_memory)
            try:
                run()
            finally:
                reuse_freed_memory(reuse)

        return with_allocator

    baseline = step()
    steps = {"reuse on": allocator(True, baseline), "reuse off": allocator(False, baseline)}
    steps["in-place off"] = step(without_inplace_activations(model))
    if settings.compile:
        steps["compile"] = step(compile=True)
    if device.type == "cuda":
        # On a GPU bf16 is no 50x trap: timed in turn with the others, as is cuDNN's algorithm search.
        steps["bf16"] = step(autocast_dtype=torch.bfloat16)
        steps["cudnn.benchmark"] = cudnn_benchmark(step())
    levers, _ = interleaved_samples(
        steps, settings.rounds, settings.warmup, device, settings.probe_size, label="levers"
    )
    levers["baseline"] = levers["reuse on" if reuse else "reuse off"]
    batch_size = settings.batch_size

    def trained(lever: str, candidate: str, reference: str = "baseline") -> dict[str, Any]:
        value, base = (images_per_s(levers[key], batch_size) for key in (candidate, reference))
        speedup = efficiency(levers[candidate]) / efficiency(levers[reference])
        return {"lever": lever, "kind": "train", "value": value, "baseline": base, "speedup": speedup}

    base_rate = images_per_s(levers["baseline"], batch_size)
    bf16 = (
        images_per_s(levers["bf16"], batch_size)
        if "bf16" in levers
        else training_throughput(
            model, settings.spec, steps=1, warmup=1, device=device, channels_last=channels_last,
            autocast_dtype=torch.bfloat16,
        )
    )  # fmt: skip
    layouts = {key: samples[(name, key)] for key in MEMORY_FORMATS}
    rows = [
        trained("freed-memory reuse (reuse_freed_memory)", "reuse on", "reuse off"),
        {"lever": "channels_last memory format", "kind": "train",
         "value": images_per_s(layouts["channels_last"], batch_size), "baseline": images_per_s(layouts["contiguous"], batch_size),
         "speedup": efficiency(layouts["channels_last"]) / efficiency(layouts["contiguous"])},
        {"lever": "bf16 autocast", "kind": "train", "value": bf16, "baseline": base_rate, "speedup": bf16 / base_rate},
        trained("in-place activations off", "in-place off"),
    ]  # fmt: skip
    if settings.compile:
        rows.append(trained("torch.compile", "compile"))
    if "cudnn.benchmark" in levers:
        rows.append(trained("cudnn.benchmark (trainer.benchmark=true)", "cudnn.benchmark"))
    base_latency = latency_s(model, settings, device, channels_last)
    folded = latency_s(fold_batch_norms(model), settings, device, channels_last)
    rows.append(
        {"lever": "conv-BatchNorm folding", "kind": "latency", "value": folded, "baseline": base_latency, "speedup": base_latency / folded}
    )  # fmt: skip
    return rows + measure_data_levers(data_rate, settings, device, train_transforms)


def measure_data_levers(
    in_process_rate: float, settings: BenchmarkSettings, device: torch.device, train_transforms: Sequence[Any]
) -> list[dict[str, Any]]:
    """Loader workers, decoded-image caching and (on CUDA) pinned memory, in delivered images/s.

    ``in_process_rate`` is the synthetic datamodule's rate without workers, already measured.
    Workers are measured on in-memory data and on PNG files decoded on access, where decoding is the work
    they could share; caching and decoding use a temporary folder of synthetic PNGs at the benchmark size.
    """
    workers = default_num_workers()
    sizes = {"size": settings.size, "in_channels": settings.in_channels, "batch_size": settings.batch_size}

    def synthetic(device: torch.device | None = None, **options: Any) -> float:
        datamodule = synthetic_datamodule(
            **sizes, batches=settings.data_batches, train_transforms=train_transforms, **options
        )
        return data_throughput(datamodule, device)

    rows = [
        {"lever": f"{workers} data-loader workers (in-memory data)", "kind": "data", "value": synthetic(num_workers=workers), "baseline": in_process_rate},
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="unet-benchmark-") as directory:
        source = synthetic_datamodule(**sizes, batches=settings.data_batches, train_transforms=())
        root = write_png_folder(Path(directory), source)

        def folder(**options: Any) -> float:
            return data_throughput(
                folder_datamodule(
                    root,
                    settings.in_channels,
                    settings.batch_size,
                    train_transforms,
                    **{"num_workers": 0, **options},
                )
            )

        decoded = folder(cache=False)
        rows += [
            {"lever": "decoded-image caching (PNG folder)", "kind": "data", "value": folder(cache=True), "baseline": decoded},
            {"lever": f"{workers} data-loader workers (PNG folder, decoded on access)", "kind": "data", "value": folder(cache=False, num_workers=workers), "baseline": decoded},
        ]  # fmt: skip
    if device.type == "cuda":
        copied = {pin: synthetic(device, pin_memory=pin) for pin in (True, False)}
        rows.append({"lever": "pinned memory (batches copied to the GPU)", "kind": "data", "value": copied[True], "baseline": copied[False]})  # fmt: skip
    return [{**row, "speedup": row["value"] / row["baseline"]} for row in rows]
