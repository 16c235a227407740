"""How fast each upsampling method (and each peer network) trains and infers on this machine
(``unet-benchmark mode=speed``).

One process, one run: for every method with every encoder asked for (and with ``peers``, the peer
networks) it measures training throughput in its better memory format, inference latency, peak memory,
FLOPs per image, and achieved training GFLOP/s as a share of this machine's fp32 matrix-multiply peak,
measured in the same run; plus how fast the datamodule delivers batches compared with how fast training
consumes them. The levers (:mod:`~unet.benchmarks.levers`) are measured against this run's rows.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unet.benchmarks.settings import BenchmarkSettings
from unet.models.sizing import count_parameters
from unet.profiling.costs import (
    flops_per_image,
    inference_latency,
    training_flops_per_image,
    training_peak_memory_mb,
    training_step,
)
from unet.profiling.data import data_throughput, synthetic_datamodule
from unet.profiling.machine import cpu_flags, cpu_model, default_device, machine_name
from unet.profiling.timing import StepSample, efficiency, images_per_s, interleaved_samples
from unet.utils.errors import ConfigError
from unet.utils.layouts import MEMORY_FORMATS
from unet.utils.tables import text_table

log = logging.getLogger(__name__)

# The framework's default method: the model the levers and the scaling are measured on, when it is measured.
MAIN_METHOD = "bilinear"


class MeasuredNets:
    """The U-Nets one run measures: each method with each encoder asked for, by name.

    ``nets``: a network builder per upsampling method, taking ``in_channels``, ``num_classes`` and
    ``settings.net_options`` (the network contract of ``configs/model/net/``). Models are named
    ``<encoder>/<method>`` when ``settings.encoders`` is given, else by method.
    """

    def __init__(self, settings: BenchmarkSettings, nets: Mapping[str, Callable[..., nn.Module]]) -> None:
        methods = list(settings.methods or nets)
        unknown = [method for method in methods if method not in nets]
        if unknown:
            raise ConfigError(
                f"methods: unknown upsampling method(s) {unknown}; valid names: {', '.join(nets)}"
            )
        self.settings = settings
        self.nets = nets
        # Each model's (method, encoder keywords).
        self.variants: dict[str, tuple[str, dict[str, str]]] = (
            {
                f"{encoder}/{method}": (method, {"encoder": encoder})
                for encoder in settings.encoders
                for method in methods
            }
            if settings.encoders
            else {method: (method, {}) for method in methods}
        )

    @property
    def main(self) -> str:
        """The model the levers and the scaling are measured on: the default method's, else the first."""
        return next(
            (name for name, (method, _) in self.variants.items() if method == MAIN_METHOD),
            next(iter(self.variants)),
        )

    def build(self, name: str, **options: Any) -> nn.Module:
        """The model ``name``, with ``options`` for its network (e.g. ``checkpoint_encoder``)."""
        method, encoder = self.variants[name]
        s = self.settings
        return self.nets[method](
            in_channels=s.in_channels, num_classes=s.num_classes, **s.net_options, **encoder, **options
        )


@dataclass
class SpeedMeasurement:
    """A speed run's report and what the levers measure against: the models and their training samples."""

    report: dict[str, Any]
    models: dict[str, nn.Module]
    samples: dict[Hashable, list[StepSample]]  # keyed by (model, memory format)
    main_model: str


def latency_s(
    model: nn.Module, settings: BenchmarkSettings, device: torch.device, channels_last: bool
) -> float:
    """Seconds per image at batch 1 at the benchmark's size (see :func:`~unet.profiling.costs.inference_latency`)."""
    return inference_latency(
        model, settings.spec, repeats=settings.repeats, warmup=settings.warmup, device=device,
        channels_last=channels_last,
    )  # fmt: skip


def machine_record(device: torch.device) -> dict[str, Any]:
    """The machine a report's figures come from: device, processor, vector extensions, threads, torch."""
    return {
        "device": str(device),
        "name": machine_name(device.type),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def settings_record(settings: BenchmarkSettings) -> dict[str, Any]:
    """The settings as JSON reads them back: lists, not tuples."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(settings).items()
    }


def _training_samples(
    built: Mapping[str, nn.Module], settings: BenchmarkSettings, device: torch.device
) -> tuple[dict[Hashable, list[StepSample]], list[float]]:
    """Samples of a training step of every (model, memory format), taken in turn (see :func:`interleaved_samples`)."""
    steps = {
        (name, layout): training_step(model, settings.spec, device=device, channels_last=layout == "channels_last")
        for name, model in built.items()
        for layout in MEMORY_FORMATS
    }  # fmt: skip
    return interleaved_samples(steps, settings.rounds, settings.warmup, device, settings.probe_size, "models")


def _measure_model(
    name: str,
    model: nn.Module,
    samples: dict[Hashable, list[StepSample]],
    settings: BenchmarkSettings,
    device: torch.device,
) -> dict[str, Any]:
    """Every number of one model, in whichever memory format trains it faster (drift-corrected)."""
    by_layout = {layout: samples[(name, layout)] for layout in MEMORY_FORMATS}
    layout = max(MEMORY_FORMATS, key=lambda key: efficiency(by_layout[key]))
    s = settings
    train_flops = training_flops_per_image(model, s.spec)
    step_flops = train_flops * s.batch_size
    chosen = by_layout[layout]
    return {
        "model": name,
        "params": count_parameters(model),
        "forward_gflops_per_image": flops_per_image(model, s.spec) / 1e9,
        "train_gflops_per_image": train_flops / 1e9,
        "memory_format": layout,
        "train_images_per_s": images_per_s(chosen, s.batch_size),
        **{
            f"train_images_per_s_{key}": images_per_s(value, s.batch_size) for key, value in by_layout.items()
        },
        "train_gflops_per_s": statistics.median(step_flops / sample.seconds / 1e9 for sample in chosen),
        "fraction_of_matmul_peak": efficiency(chosen, step_flops),
        "latency_ms": 1e3 * latency_s(model, s, device, layout == "channels_last"),
        "peak_memory_mb": training_peak_memory_mb(model, s.spec, device),
    }


def _build_peers(
    peers: Mapping[str, Callable[..., nn.Module]], sizes: Mapping[str, int]
) -> dict[str, nn.Module]:
    """The peers whose packages are installed; the others are skipped with a warning."""
    built = {}
    for name, build in peers.items():
        try:
            built[name] = build(**sizes)
        except ImportError as error:
            log.warning("skipping peer %s: %s", name, error)
    return built


def _add_peer_ratios(results: Sequence[dict[str, Any]], peers: Sequence[str]) -> None:
    """Each row's achieved GFLOP/s as a multiple of each peer's (``gflops_ratio_vs_<peer>``)."""
    shares = {row["model"]: row["fraction_of_matmul_peak"] for row in results}
    for row in results:
        for peer in peers:
            # Drift-corrected: the ratio of shares of the matmul rate measured around each step.
            row[f"gflops_ratio_vs_{peer}"] = row["fraction_of_matmul_peak"] / shares[peer]


def measure_speed(
    settings: BenchmarkSettings,
    nets: Mapping[str, Callable[..., nn.Module]],
    peers: Mapping[str, Callable[..., nn.Module]],
    train_transforms: Sequence[Any],
) -> SpeedMeasurement:
    """Every model's row and the data delivery, as :func:`run_speed` reports them, with the models and
    samples the levers compare against (see :class:`MeasuredNets` for ``nets``; ``peers`` take
    ``in_channels`` and ``num_classes`` alone)."""
    device = torch.device(default_device(settings.device))
    torch.manual_seed(0)
    measured = MeasuredNets(settings, nets)
    built = {name: measured.build(name) for name in measured.variants}
    sizes = {"in_channels": settings.in_channels, "num_classes": settings.num_classes}
    peer_models = _build_peers(peers, sizes) if settings.peers else {}
    built = {name: model.to(device) for name, model in {**built, **peer_models}.items()}
    samples, probes = _training_samples(built, settings, device)
    results = [_measure_model(name, model, samples, settings, device) for name, model in built.items()]
    _add_peer_ratios(results, list(peer_models))
    fastest_training = max(row["train_images_per_s"] for row in results[: len(measured.variants)])
    # In the training process, as the synthetic preset loads (data.num_workers=0; see the levers).
    data_rate = data_throughput(
        synthetic_datamodule(
            settings.size, settings.in_channels, settings.batch_size, settings.data_batches, train_transforms
        )
    )
    report = {
        "machine": machine_record(device),
        "settings": settings_record(settings),
        "matmul_peak_gflops": statistics.median(probes),
        "data_images_per_s": data_rate,
        "data_to_training_ratio": data_rate / fastest_training,
        "results": results,
    }
    return SpeedMeasurement(report, built, samples, measured.main)


def run_speed(
    settings: BenchmarkSettings,
    nets: Mapping[str, Callable[..., nn.Module]],
    peers: Mapping[str, Callable[..., nn.Module]],
    train_transforms: Sequence[Any],
) -> dict[str, Any]:
    """All measurements of one speed run, as the JSON report ``unet-benchmark`` writes.

    ``nets``: a network builder per upsampling method, ``peers``: one per peer network; each takes the
    keywords ``in_channels`` and ``num_classes`` (the network contract of ``configs/model/net/``), the
    nets also ``settings.net_options``. ``train_transforms``: the instantiated training augmentation
    the data delivery is timed with. Freed-memory reuse is the caller's process setting
    (``settings.reuse_freed_memory`` says which it is).
    """
    return measure_speed(settings, nets, peers, train_transforms).report


def machine_line(report: Mapping[str, Any]) -> str:
    """The line every printed report starts with: where its figures come from."""
    machine = report["machine"]
    return (
        f"machine: {machine['name']}, torch {machine['torch']}; "
        f"CPU {machine['cpu']} ({machine['cpu_flags'] or 'no AVX'})"
    )


def format_speed(report: Mapping[str, Any]) -> str:
    """The speed report as a text table, one row per model, with the matmul peak and the data delivery."""
    formats = {
        "model": "{}", "params": "{:,}", "train_gflops_per_image": "{:.2f}", "memory_format": "{}",
        "train_images_per_s": "{:.1f}", "train_gflops_per_s": "{:.1f}", "fraction_of_matmul_peak": "{:.0%}",
        "latency_ms": "{:.1f}", "peak_memory_mb": "{:.0f}",
    }  # fmt: skip
    formats |= {key: "{:.2f}x" for key in report["results"][0] if key.startswith("gflops_ratio_vs_")}
    return "\n".join(
        [
            machine_line(report),
            text_table([(key, key, fmt) for key, fmt in formats.items()], report["results"]),
            f"fp32 matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s (median of the probes); data pipeline: "
            f"{report['data_images_per_s']:.0f} images/s = {report['data_to_training_ratio']:.1f}x the fastest training",
        ]
    )
