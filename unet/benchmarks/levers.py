"""Speed levers (``unet-benchmark mode=levers``): each setting that could make training, inference or
data delivery faster, measured against its baseline on the speed run's main model."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unet.benchmarks.settings import BenchmarkSettings
from unet.benchmarks.speed import format_speed, latency_s, measure_speed
from unet.data.base import default_num_workers
from unet.models.batchnorm_folding import fold_batch_norms
from unet.profiling.costs import training_step, training_throughput
from unet.profiling.data import data_throughput, folder_datamodule, synthetic_datamodule, write_png_folder
from unet.profiling.timing import StepSample, efficiency, images_per_s, interleaved_samples
from unet.utils.layouts import MEMORY_FORMATS
from unet.utils.runtime import reuse_freed_memory
from unet.utils.tables import text_table


def without_inplace_activations(model: nn.Module) -> nn.Module:
    """A copy whose activations allocate their outputs instead of overwriting their inputs."""
    copy_ = copy.deepcopy(model)
    for module in copy_.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return copy_


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


def with_freed_memory_reuse(reuse: bool, restore: bool, run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with freed-memory reuse set to ``reuse``, then set back to ``restore`` (the process's own)."""

    def with_allocator() -> None:
        reuse_freed_memory(reuse)
        try:
            run()
        finally:
            reuse_freed_memory(restore)

    return with_allocator


def run_levers(
    settings: BenchmarkSettings,
    nets: Mapping[str, Callable[..., nn.Module]],
    peers: Mapping[str, Callable[..., nn.Module]],
    train_transforms: Sequence[Any],
) -> dict[str, Any]:
    """The speed report (:func:`~unet.benchmarks.speed.run_speed`, same arguments) with each lever
    measured on its main model (``levers_model``: the bilinear model, else the first): ``levers``."""
    speed = measure_speed(settings, nets, peers, train_transforms)
    report = speed.report
    name = speed.main_model
    row = next(row for row in report["results"] if row["model"] == name)
    device = torch.device(report["machine"]["device"])
    report["levers_model"] = name
    report["levers"] = measure_levers(
        row,
        speed.models[name],
        speed.samples,
        report["data_images_per_s"],
        settings,
        device,
        train_transforms,
    )
    return report


def measure_levers(
    result: Mapping[str, Any],
    model: nn.Module,
    samples: Mapping[Hashable, list[StepSample]],
    data_rate: float,
    settings: BenchmarkSettings,
    device: torch.device,
    train_transforms: Sequence[Any],
) -> list[dict[str, Any]]:
    """Each speed lever against the baseline (fp32, eager, the model's better memory format).

    Training levers are compared in images/s, inference ones in latency, data ones in images/s. Training
    levers are sampled in turn with the baseline, and their speedups are ratios of drift-corrected rates
    (see :func:`~unet.profiling.timing.efficiency`); bf16 on a CPU without bf16 instructions is so slow
    that one step tells. ``result`` is the model's row of the speed run, ``samples`` the speed run's
    training samples keyed by (model, layout), ``data_rate`` the in-process delivery rate. The
    allocator lever switches freed-memory reuse for its steps and restores ``settings.reuse_freed_memory``.
    """
    channels_last = result["memory_format"] == "channels_last"
    layouts = {key: samples[(result["model"], key)] for key in MEMORY_FORMATS}
    levers = _training_lever_samples(model, settings, device, channels_last)
    rows = _training_lever_rows(levers, layouts, model, settings, device, channels_last)
    base_latency = latency_s(model, settings, device, channels_last)
    folded = latency_s(fold_batch_norms(model), settings, device, channels_last)
    rows.append(
        {"lever": "conv-BatchNorm folding", "kind": "latency", "value": folded, "baseline": base_latency, "speedup": base_latency / folded}
    )  # fmt: skip
    return rows + measure_data_levers(data_rate, settings, device, train_transforms)


def _training_lever_samples(
    model: nn.Module, settings: BenchmarkSettings, device: torch.device, channels_last: bool
) -> dict[str, list[StepSample]]:
    """Samples of a training step with each training lever, taken in turn; ``baseline`` is the
    process's own allocator setting."""

    def step(candidate: nn.Module = model, **options: Any) -> Callable[[], None]:
        return training_step(candidate, settings.spec, device=device, channels_last=channels_last, **options)

    reuse = settings.reuse_freed_memory
    baseline = step()
    steps = {
        "reuse on": with_freed_memory_reuse(True, reuse, baseline),
        "reuse off": with_freed_memory_reuse(False, reuse, baseline),
        "in-place off": step(without_inplace_activations(model)),
    }
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
    return levers


def _train_row(
    lever: str, samples: Sequence[StepSample], reference: Sequence[StepSample], batch_size: int
) -> dict[str, Any]:
    """A training lever: images/s with it and without, and the drift-corrected speedup."""
    return {
        "lever": lever,
        "kind": "train",
        "value": images_per_s(samples, batch_size),
        "baseline": images_per_s(reference, batch_size),
        "speedup": efficiency(samples) / efficiency(reference),
    }


def _training_lever_rows(
    levers: Mapping[str, list[StepSample]],
    layouts: Mapping[str, list[StepSample]],
    model: nn.Module,
    settings: BenchmarkSettings,
    device: torch.device,
    channels_last: bool,
) -> list[dict[str, Any]]:
    """The training levers' rows: allocator, memory format, bf16, in-place activations (and compile,
    cuDNN's search when measured)."""
    batch_size = settings.batch_size
    baseline = levers["baseline"]
    base_rate = images_per_s(baseline, batch_size)
    bf16 = (
        images_per_s(levers["bf16"], batch_size)
        if "bf16" in levers
        else training_throughput(
            model, settings.spec, steps=1, warmup=1, device=device, channels_last=channels_last,
            autocast_dtype=torch.bfloat16,
        )
    )  # fmt: skip
    rows = [
        _train_row("freed-memory reuse (reuse_freed_memory)", levers["reuse on"], levers["reuse off"], batch_size),
        _train_row("channels_last memory format", layouts["channels_last"], layouts["contiguous"], batch_size),
        {"lever": "bf16 autocast", "kind": "train", "value": bf16, "baseline": base_rate, "speedup": bf16 / base_rate},
        _train_row("in-place activations off", levers["in-place off"], baseline, batch_size),
    ]  # fmt: skip
    if "compile" in levers:
        rows.append(_train_row("torch.compile", levers["compile"], baseline, batch_size))
    if "cudnn.benchmark" in levers:
        rows.append(
            _train_row(
                "cudnn.benchmark (trainer.benchmark=true)", levers["cudnn.benchmark"], baseline, batch_size
            )
        )
    return rows


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


def format_levers(report: Mapping[str, Any]) -> str:
    """The speed table, then one row per lever (latency in ms per image; rates as they are)."""
    scale = {"latency": 1e3}  # seconds -> ms
    levers = [
        {**row, "value": row["value"] * scale.get(row["kind"], 1), "baseline": row["baseline"] * scale.get(row["kind"], 1)}
        for row in report["levers"]
    ]  # fmt: skip
    formats = {"lever": "{}", "kind": "{}", "baseline": "{:.2f}", "value": "{:.2f}", "speedup": "{:.2f}x"}
    return "\n".join(
        [
            format_speed(report),
            "",
            f"speed levers ({report['levers_model']}; train and data: images/s, latency: ms per image):",
            text_table([(key, key, fmt) for key, fmt in formats.items()], levers),
        ]
    )
