"""How fast each upsampling method (and each peer network) trains and infers on this machine.

One process, one run: for every method (and with ``peers``, the peer networks) it measures training
throughput in its better memory format, inference latency, peak memory, FLOPs per image, and achieved
training GFLOP/s as a share of this machine's fp32 matrix-multiply peak, measured in the same run; plus
how fast the datamodule delivers batches compared with how fast training consumes them, and (with
``levers``) each speed lever. ``unet-benchmark`` is the command; this module takes plain arguments.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unet.models.sizing import count_parameters
from unet.profiling.costs import (
    InputSpec,
    flops_per_image,
    training_flops_per_image,
    training_peak_memory_mb,
    training_step,
)
from unet.profiling.data import data_throughput, synthetic_datamodule
from unet.profiling.levers import latency_s, measure_levers
from unet.profiling.machine import cpu_flags, cpu_model, default_device, machine_name
from unet.profiling.scaling import SCALING_SIZES, measure_scaling
from unet.profiling.timing import StepSample, efficiency, images_per_s, interleaved_samples
from unet.utils.layouts import MEMORY_FORMATS
from unet.utils.tables import text_table

log = logging.getLogger(__name__)

# What ``quick`` sets: tiny sizes and one step, to check that everything runs.
QUICK = {"size": 32, "batch_size": 2, "warmup": 1, "repeats": 1, "rounds": 1, "net_options": {"depth": 2, "base_channels": 8}, "scaling_sizes": (32, 64)}  # fmt: skip
# The scaling table's measured columns, in order.
SCALING_COLUMNS = ("train_s", "train_peak_memory_mb", "infer_s", "infer_peak_memory_mb")
# The framework's default method: the one the levers are measured on, when it was measured.
LEVERS_METHOD = "bilinear"


@dataclass(frozen=True)
class BenchmarkSettings:
    """What to measure and how long (the keys of ``configs/benchmark.yaml`` but the networks).

    ``quick`` overrides the sizes and repetitions with :data:`QUICK`, here and nowhere else.
    """

    methods: tuple[str, ...] | None = None  # upsampling methods to measure; None: every one given
    # Encoders each method is measured with (unet.models.ENCODERS), models named "<encoder>/<method>";
    # None: the nets' own encoder, models named by method.
    encoders: tuple[str, ...] | None = None
    peers: bool = False  # also measure the peer networks given
    size: int = 256  # height and width of the input
    batch_size: int = 8
    in_channels: int = 1
    num_classes: int = 2
    rounds: int = 5  # timed training steps per model, taken in turn (median of the rounds)
    warmup: int = 2
    repeats: int = 10  # timed inference calls
    device: str | None = None  # cpu or cuda; None: cuda when present
    levers: bool = False  # also measure each speed lever
    compile: bool = False  # with levers, also time torch.compile (slow to build)
    scaling: bool = False  # also measure how time and memory grow with the image (batch 1)
    scaling_sizes: tuple[int, ...] = SCALING_SIZES  # image sides measured with scaling
    scaling_bf16: bool = False  # scaling's training steps under bf16 autocast
    # The process's freed-memory reuse (runtime.reuse_freed_memory): the allocator lever's baseline.
    reuse_freed_memory: bool = True
    quick: bool = False  # tiny sizes and one step: checks that it runs
    net_options: Mapping[str, Any] = field(default_factory=dict)  # keywords for every measured U-Net

    def __post_init__(self) -> None:
        for key in ("methods", "encoders", "scaling_sizes"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.quick:
            for key, value in QUICK.items():
                object.__setattr__(self, key, value)

    @property
    def spec(self) -> InputSpec:
        """The measured input: square images of side ``size``."""
        return InputSpec(self.in_channels, self.num_classes, self.size, self.size, self.batch_size)

    @property
    def probe_size(self) -> int:
        """Side of the matmul probes: small in quick mode, where the steps are tiny too."""
        return 256 if self.quick else 1024

    @property
    def data_batches(self) -> int:
        """Training batches of the data whose delivery is timed."""
        return 2 if self.quick else 20


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


def run_benchmark(
    settings: BenchmarkSettings,
    nets: Mapping[str, Callable[..., nn.Module]],
    peers: Mapping[str, Callable[..., nn.Module]],
    train_transforms: Sequence[Any],
) -> dict[str, Any]:
    """All measurements of one run, as the JSON report ``unet-benchmark`` writes.

    ``nets``: a network builder per upsampling method, ``peers``: one per peer network; each takes the
    keywords ``in_channels`` and ``num_classes`` (the network contract of ``configs/model/net/``), the
    nets also ``settings.net_options``. ``train_transforms``: the instantiated training augmentation
    the data delivery is timed with. Freed-memory reuse is the caller's process setting
    (``settings.reuse_freed_memory`` says which it is).
    """
    device = torch.device(default_device(settings.device))
    torch.manual_seed(0)
    methods = list(settings.methods or nets)
    unknown = [method for method in methods if method not in nets]
    if unknown:
        raise ValueError(f"unknown upsampling method(s) {unknown}; valid names: {', '.join(nets)}")
    sizes = {"in_channels": settings.in_channels, "num_classes": settings.num_classes}
    # Each measured model's (method, encoder keywords): every method with every encoder asked for.
    models = (
        {
            f"{encoder}/{method}": (method, {"encoder": encoder})
            for encoder in settings.encoders
            for method in methods
        }
        if settings.encoders
        else {method: (method, {}) for method in methods}
    )

    def build(name: str, **options: Any) -> nn.Module:
        method, encoder = models[name]
        return nets[method](**sizes, **settings.net_options, **encoder, **options)

    built = {name: build(name) for name in models}
    peer_models = _build_peers(peers, sizes) if settings.peers else {}
    built = {name: model.to(device) for name, model in {**built, **peer_models}.items()}
    samples, probes = _training_samples(built, settings, device)
    results = [_measure_model(name, model, samples, settings, device) for name, model in built.items()]
    for row in results:
        for peer in peer_models:
            peer_row = next(r for r in results if r["model"] == peer)
            # Drift-corrected: the ratio of shares of the matmul rate measured around each step.
            row[f"gflops_ratio_vs_{peer}"] = (
                row["fraction_of_matmul_peak"] / peer_row["fraction_of_matmul_peak"]
            )
    # The model the levers and the scaling are measured on: the default method's, else the first.
    main_model = next(
        (name for name, (method, _) in models.items() if method == LEVERS_METHOD), next(iter(models))
    )
    fastest_training = max(row["train_images_per_s"] for row in results[: len(models)])
    # In the training process, as the synthetic preset loads (data.num_workers=0; see the levers).
    data_rate = data_throughput(
        synthetic_datamodule(
            settings.size, settings.in_channels, settings.batch_size, settings.data_batches, train_transforms
        )
    )
    report = {
        "machine": {
            "device": str(device),
            "name": machine_name(device.type),
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "settings": {  # as JSON reads it back: lists, not tuples
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(settings).items()
        },
        "matmul_peak_gflops": statistics.median(probes),
        "data_images_per_s": data_rate,
        "data_to_training_ratio": data_rate / fastest_training,
        "results": results,
    }
    if settings.levers:
        report["levers_model"] = main_model
        result = results[list(models).index(main_model)]
        report["levers"] = measure_levers(
            result, built[main_model], samples, data_rate, settings, device, train_transforms
        )
    if settings.scaling:
        report["scaling_model"] = main_model
        report["scaling"] = measure_scaling(
            lambda checkpoint_encoder: build(main_model, checkpoint_encoder=checkpoint_encoder),
            settings.scaling_sizes, settings.in_channels, settings.num_classes, device,
            steps=settings.rounds, warmup=settings.warmup, bf16=settings.scaling_bf16,
        )  # fmt: skip
    return report


def _scaling_cell(row: Mapping[str, Any], key: str) -> str:
    if row["out_of_memory"]:
        return "out of memory"
    return "failed" if "error" in row else f"{row[key]:.3f}"


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text tables: one row per model, then (with levers) one per lever."""
    formats = {
        "model": "{}", "params": "{:,}", "train_gflops_per_image": "{:.2f}", "memory_format": "{}",
        "train_images_per_s": "{:.1f}", "train_gflops_per_s": "{:.1f}", "fraction_of_matmul_peak": "{:.0%}",
        "latency_ms": "{:.1f}", "peak_memory_mb": "{:.0f}",
    }  # fmt: skip
    formats |= {key: "{:.2f}x" for key in report["results"][0] if key.startswith("gflops_ratio_vs_")}
    machine = report["machine"]
    lines = [
        f"machine: {machine['name']}, torch {machine['torch']}; CPU {machine['cpu']} ({machine['cpu_flags'] or 'no AVX'})",
        text_table([(key, key, fmt) for key, fmt in formats.items()], report["results"]),
        f"fp32 matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s (median of the probes); data pipeline: "
        f"{report['data_images_per_s']:.0f} images/s = {report['data_to_training_ratio']:.1f}x the fastest training",
    ]
    if "levers" in report:
        scale = {"latency": 1e3}  # seconds -> ms; rates stay as they are
        levers = [
            {**row, "value": row["value"] * scale.get(row["kind"], 1), "baseline": row["baseline"] * scale.get(row["kind"], 1)}
            for row in report["levers"]
        ]  # fmt: skip
        formats = {"lever": "{}", "kind": "{}", "baseline": "{:.2f}", "value": "{:.2f}", "speedup": "{:.2f}x"}
        lines += [
            "",
            f"speed levers ({report['levers_model']}; train and data: images/s, latency: ms per image):",
            text_table([(key, key, fmt) for key, fmt in formats.items()], levers),
        ]
    if "scaling" in report:
        rows = [
            {**row, **{key: _scaling_cell(row, key) for key in SCALING_COLUMNS}} for row in report["scaling"]
        ]
        formats = dict.fromkeys(["size", "checkpoint_encoder", *SCALING_COLUMNS], "{}")
        lines += [
            "",
            f"scaling ({report['scaling_model']}, batch 1; seconds per step or image, peak memory in MiB):",
            text_table([(key, key, fmt) for key, fmt in formats.items()], rows),
        ]
    return "\n".join(lines)
