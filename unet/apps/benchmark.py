"""``python scripts/benchmark.py``: how fast each upsampling method trains and infers on this machine.

One process, one run: for every method (and with ``--peers``, MONAI's BasicUNet and
segmentation_models_pytorch's U-Net) it measures training throughput in its better memory format,
inference latency, peak memory, FLOPs per image, and achieved training GFLOP/s as a share of this
machine's fp32 matrix-multiply peak, measured in the same run; plus how fast the datamodule
delivers batches compared with how fast training consumes them.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image
from torch import nn

from unet.data import FolderDataModule, SyntheticDataModule
from unet.data.base import SegmentationDataModule, default_num_workers
from unet.data.shapes import CLASS_NAMES
from unet.evaluation.profiling import (
    count_parameters,
    flops_per_image,
    inference_latency,
    median_seconds,
    peak_memory_bytes,
    training_flops_per_image,
    training_step,
    training_throughput,
)
from unet.models import UPSAMPLERS, UNet
from unet.models.fusion import fold_batch_norms
from unet.utils.allocator import reuse_freed_memory

# Memory formats every model is trained in; its row reports the faster one.
LAYOUTS = ("contiguous", "channels_last")


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 5) -> float:
    """This machine's fp32 matrix-multiply rate right now, the ceiling convolutions can approach.

    The best of ``repeats`` products: the rate the hardware reaches when nothing gets in the way.
    """
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    best = min(median_seconds(lambda: a @ b, repeats=1, warmup=0, device=device) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


@dataclass(frozen=True)
class StepSample:
    """One timed training step and the matmul rate measured around it (the mean of the probes before and after)."""

    seconds: float
    matmul_gflops: float


def interleaved_samples(
    steps: Mapping[Hashable, Callable[[], None]], args: argparse.Namespace, device: torch.device, label: str
) -> tuple[dict[Hashable, list[StepSample]], list[float]]:
    """``args.rounds`` samples of every step, taken in turn, each between two matmul probes; and all the probes.

    The reference machine is a shared VM whose speed drifts by ±15 % within minutes, so a step timed now
    and another timed a minute later compare badly. Taking the steps in turn samples them over the same
    stretches of time, and dividing each step's rate by the matmul rate measured around it cancels what
    drift remains (see :func:`efficiency`): measured so, ratios between models repeat within a few percent.
    """
    probe_size = 256 if args.quick else 1024
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    samples: dict[Hashable, list[StepSample]] = {key: [] for key in steps}
    probes = [matmul_gflops(device, probe_size)]
    for round_index in range(args.rounds):
        for key, step in steps.items():
            seconds = median_seconds(step, repeats=1, warmup=0, device=device)
            probes.append(matmul_gflops(device, probe_size))
            samples[key].append(StepSample(seconds, (probes[-2] + probes[-1]) / 2))
        print(f"{label}: round {round_index + 1}/{args.rounds} timed", flush=True)
    return samples, probes


def images_per_s(samples: Sequence[StepSample], batch_size: int) -> float:
    """Training images/s: the batch over the median step time."""
    return batch_size / statistics.median(sample.seconds for sample in samples)


def efficiency(samples: Sequence[StepSample], flops_per_step: float = 1.0) -> float:
    """The median over samples of each step's FLOP/s divided by the matmul rate measured around it.

    With the FLOPs of a step it is the share of the matmul peak; with the default 1 it is a drift-corrected
    step rate, whose ratios between two steps are their speed ratio on a machine of constant speed.
    """
    return statistics.median(
        flops_per_step / sample.seconds / 1e9 / sample.matmul_gflops for sample in samples
    )


def peer_models(in_channels: int, num_classes: int) -> dict[str, Callable[[], nn.Module]]:
    """The models users would otherwise reach for, when their packages are installed."""
    peers: dict[str, Callable[[], nn.Module]] = {}
    try:
        from monai.networks.nets import BasicUNet

        peers["monai_basicunet"] = lambda: BasicUNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=num_classes,
            features=(32, 32, 64, 128, 256, 32),
        )
    except ImportError:
        pass
    try:
        import segmentation_models_pytorch as smp

        peers["smp_unet_resnet18"] = lambda: smp.Unet(
            "resnet18", encoder_weights=None, in_channels=in_channels, classes=num_classes
        )
    except ImportError:
        pass
    return peers


def training_samples(
    built: dict[str, nn.Module], args: argparse.Namespace, device: torch.device
) -> tuple[dict[Hashable, list[StepSample]], list[float]]:
    """Samples of a training step of every (model, memory format), taken in turn (see :func:`interleaved_samples`)."""
    shape = (args.in_channels, args.num_classes, args.size, args.size)
    steps = {
        (name, layout): training_step(model, args.batch_size, *shape, device=device, channels_last=layout == "channels_last")
        for name, model in built.items()
        for layout in LAYOUTS
    }  # fmt: skip
    return interleaved_samples(steps, args, device, "models")


def measure_model(
    name: str,
    model: nn.Module,
    samples: dict[Hashable, list[StepSample]],
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Every number of one model, in whichever memory format trains it faster (drift-corrected)."""
    by_layout = {layout: samples[(name, layout)] for layout in LAYOUTS}
    layout = max(LAYOUTS, key=lambda key: efficiency(by_layout[key]))
    train_flops = training_flops_per_image(model, args.in_channels, args.num_classes, args.size, args.size)
    step_flops = train_flops * args.batch_size
    chosen = by_layout[layout]
    return {
        "model": name,
        "params": count_parameters(model),
        "forward_gflops_per_image": flops_per_image(model, args.in_channels, args.size, args.size) / 1e9,
        "train_gflops_per_image": train_flops / 1e9,
        "memory_format": layout,
        "train_images_per_s": images_per_s(chosen, args.batch_size),
        **{
            f"train_images_per_s_{key}": images_per_s(value, args.batch_size)
            for key, value in by_layout.items()
        },
        "train_gflops_per_s": statistics.median(step_flops / sample.seconds / 1e9 for sample in chosen),
        "fraction_of_matmul_peak": efficiency(chosen, step_flops),
        "latency_ms": 1e3 * latency(model, args, device, layout == "channels_last"),
        "peak_memory_mb": peak_memory_mb(model, args, device),
    }


def peak_memory_mb(model: nn.Module, args: argparse.Namespace, device: torch.device) -> float:
    """Peak memory of one training step from scratch (see :func:`peak_memory_bytes`).

    Memory kept for reuse is handed back first (see :func:`peak_memory_bytes`), so the step's working set shows.
    """
    shape = (args.in_channels, args.num_classes, args.size, args.size)
    return peak_memory_bytes(training_step(model, args.batch_size, *shape, device=device), device) / 2**20


def latency(model: nn.Module, args: argparse.Namespace, device: torch.device, channels_last: bool) -> float:
    """Seconds per image at batch 1 (see :func:`inference_latency`)."""
    return inference_latency(
        model, args.in_channels, args.size, args.size, repeats=args.repeats, warmup=args.warmup, device=device,
        channels_last=channels_last,
    )  # fmt: skip


@functools.cache
def _preset_train_transforms_config() -> Any:
    with initialize_config_module("unet.configs", version_base="1.3"):
        return compose("train").data.train_transforms


def preset_train_transforms() -> list[Any]:
    """The default data preset's training augmentation (``configs/data/synthetic.yaml``), instantiated.

    Data delivery is timed with the augmentation training really runs, whatever the preset says. The
    config is composed once per process; every datamodule gets transforms of its own.
    """
    return instantiate(_preset_train_transforms_config()) or []


def synthetic_datamodule(args: argparse.Namespace, batches: int, **options: Any) -> SegmentationDataModule:
    """The default synthetic datamodule at the benchmark's size: ``batches`` training batches, in memory.

    ``options``: the datamodule's keywords (``num_workers``, 0 unless given; ``pin_memory``, ...).
    """
    return SyntheticDataModule(
        num_train=args.batch_size * batches, num_val=1, num_test=0, image_size=args.size,
        in_channels=args.in_channels, batch_size=args.batch_size,
        **{"num_workers": 0, "train_transforms": preset_train_transforms(), **options},
    )  # fmt: skip


def write_png_folder(root: Path, args: argparse.Namespace, batches: int) -> Path:
    """Synthetic images and masks as PNG files in ``root/{train,val}/{images,masks}``, as users' data arrives."""
    datamodule = synthetic_datamodule(args, batches)
    for split, count in (("train", args.batch_size * batches), ("val", 1)):
        source = datamodule.split_source(split)
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = source[index]
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                root / split / "images" / f"{index:05d}.png"
            )
            Image.fromarray(mask).save(root / split / "masks" / f"{index:05d}.png")
    return root


def folder_datamodule(root: Path, args: argparse.Namespace, **options: Any) -> SegmentationDataModule:
    """The folder datamodule over :func:`write_png_folder`'s files (``options``: cache, num_workers, ...)."""
    return FolderDataModule(
        root=str(root), num_classes=len(CLASS_NAMES), in_channels=args.in_channels, batch_size=args.batch_size,
        train_transforms=preset_train_transforms(), **options,
    )  # fmt: skip


def data_throughput(datamodule: SegmentationDataModule, device: torch.device | None = None) -> float:
    """Images/s the datamodule's training loader delivers (its augmentation included), onto ``device`` if given.

    Timed over a second epoch, as in training: worker processes persist, so their start-up is paid once per
    run. With a CUDA ``device`` every batch is copied to it (asynchronously from pinned memory).
    """
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()

    def epoch() -> int:
        count = 0
        for images, masks in loader:
            if device is not None:
                images = images.to(device, non_blocking=datamodule.pin_memory)
                masks = masks.to(device, non_blocking=datamodule.pin_memory)
            count += len(images)
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        return count

    epoch()
    start = time.perf_counter()
    count = epoch()
    return count / (time.perf_counter() - start)


def without_inplace_activations(model: nn.Module) -> nn.Module:
    """A copy whose activations allocate their outputs instead of overwriting their inputs."""
    copy_ = copy.deepcopy(model)
    for module in copy_.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return copy_


def measure_levers(
    result: dict[str, Any],
    model: nn.Module,
    samples: dict[Hashable, list[StepSample]],
    data_rate: float,
    args: argparse.Namespace,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Each speed lever against the baseline (fp32, eager, the model's better memory format).

    Training levers are compared in images/s, inference ones in latency, data ones in images/s. Training
    levers are sampled in turn with the baseline, and their speedups are ratios of drift-corrected rates
    (see :func:`efficiency`); bf16 on a CPU without bf16 instructions is so slow that one step tells.
    ``result`` is the model's row (:func:`measure_model`), ``data_rate`` the in-process delivery rate.
    """
    name = result["model"]
    shape = (args.in_channels, args.num_classes, args.size, args.size)
    channels_last = result["memory_format"] == "channels_last"
    reuse = not args.system_allocator

    def step(candidate: nn.Module = model, **options: Any) -> Callable[[], None]:
        return training_step(
            candidate, args.batch_size, *shape, device=device, channels_last=channels_last, **options
        )

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
    if args.compile:
        steps["compile"] = step(compile=True)
    levers, _ = interleaved_samples(steps, args, device, "levers")
    levers["baseline"] = levers["reuse on" if reuse else "reuse off"]

    def trained(lever: str, candidate: str, reference: str = "baseline") -> dict[str, Any]:
        value, base = (images_per_s(levers[key], args.batch_size) for key in (candidate, reference))
        speedup = efficiency(levers[candidate]) / efficiency(levers[reference])
        return {"lever": lever, "kind": "train", "value": value, "baseline": base, "speedup": speedup}

    base_rate = images_per_s(levers["baseline"], args.batch_size)
    bf16 = training_throughput(
        model, args.batch_size, *shape, steps=1, warmup=1, device=device, channels_last=channels_last,
        autocast_dtype=torch.bfloat16,
    )  # fmt: skip
    layouts = {key: samples[(name, key)] for key in LAYOUTS}
    rows = [
        trained("freed-memory reuse (reuse_freed_memory)", "reuse on", "reuse off"),
        {"lever": "channels_last memory format", "kind": "train",
         "value": images_per_s(layouts["channels_last"], args.batch_size), "baseline": images_per_s(layouts["contiguous"], args.batch_size),
         "speedup": efficiency(layouts["channels_last"]) / efficiency(layouts["contiguous"])},
        {"lever": "bf16 autocast", "kind": "train", "value": bf16, "baseline": base_rate, "speedup": bf16 / base_rate},
        trained("in-place activations off", "in-place off"),
    ]  # fmt: skip
    if args.compile:
        rows.append(trained("torch.compile", "compile"))
    base_latency = latency(model, args, device, channels_last)
    folded = latency(fold_batch_norms(model), args, device, channels_last)
    rows.append(
        {"lever": "conv-BatchNorm folding", "kind": "latency", "value": folded, "baseline": base_latency, "speedup": base_latency / folded}
    )  # fmt: skip
    return rows + measure_data_levers(data_rate, args, device)


def measure_data_levers(
    in_process_rate: float, args: argparse.Namespace, device: torch.device
) -> list[dict[str, Any]]:
    """Loader workers, decoded-image caching and (on CUDA) pinned memory, in delivered images/s.

    ``in_process_rate`` is the synthetic datamodule's rate without workers, already measured.
    Workers are measured on in-memory data and on PNG files decoded on access, where decoding is the work
    they could share; caching and decoding use a temporary folder of synthetic PNGs at the benchmark size.
    """
    batches = 2 if args.quick else 20
    workers = default_num_workers()

    def synthetic(**options: Any) -> float:
        return data_throughput(synthetic_datamodule(args, batches, **options))

    rows = [
        {"lever": f"{workers} data-loader workers (in-memory data)", "kind": "data", "value": synthetic(num_workers=workers), "baseline": in_process_rate},
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="unet-benchmark-") as directory:
        root = write_png_folder(Path(directory), args, batches)

        def folder(**options: Any) -> float:
            return data_throughput(folder_datamodule(root, args, **{"num_workers": 0, **options}))

        decoded = folder(cache=False)
        rows += [
            {"lever": "decoded-image caching (PNG folder)", "kind": "data", "value": folder(cache=True), "baseline": decoded},
            {"lever": f"{workers} data-loader workers (PNG folder, decoded on access)", "kind": "data", "value": folder(cache=False, num_workers=workers), "baseline": decoded},
        ]  # fmt: skip
    if device.type == "cuda":
        copied = {
            pin: data_throughput(synthetic_datamodule(args, batches, pin_memory=pin), device)
            for pin in (True, False)
        }
        rows.append({"lever": "pinned memory (batches copied to the GPU)", "kind": "data", "value": copied[True], "baseline": copied[False]})  # fmt: skip
    return [{**row, "speedup": row["value"] / row["baseline"]} for row in rows]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """All measurements of one invocation, as the JSON the script writes."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)

    methods = args.methods or sorted(UPSAMPLERS)
    models: dict[str, Callable[[], nn.Module]] = {
        method: (lambda m=method: UNet(args.in_channels, args.num_classes, upsample=m, depth=args.depth, base_channels=args.base_channels))
        for method in methods
    }  # fmt: skip
    peers = peer_models(args.in_channels, args.num_classes) if args.peers else {}
    built = {name: build().to(device) for name, build in {**models, **peers}.items()}
    reuse_freed_memory(not args.system_allocator)  # as unet-train does by default
    samples, probes = training_samples(built, args, device)
    results = [measure_model(name, model, samples, args, device) for name, model in built.items()]
    for row in results:
        for peer in peers:
            peer_row = next(r for r in results if r["model"] == peer)
            # Drift-corrected: the ratio of shares of the matmul rate measured around each step.
            row[f"gflops_ratio_vs_{peer}"] = (
                row["fraction_of_matmul_peak"] / peer_row["fraction_of_matmul_peak"]
            )
    fastest_training = max(row["train_images_per_s"] for row in results[: len(methods)])
    # In the training process, as the synthetic preset loads (data.num_workers=0; see the levers).
    data_rate = data_throughput(synthetic_datamodule(args, batches=2 if args.quick else 20))
    report = {
        "machine": {
            "device": str(device),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "matmul_peak_gflops": statistics.median(probes),
        "data_images_per_s": data_rate,
        "data_to_training_ratio": data_rate / fastest_training,
        "results": results,
    }
    if args.levers:
        # The framework's default method, when it was measured.
        method = "bilinear" if "bilinear" in methods else methods[0]
        report["levers_model"] = method
        result = results[methods.index(method)]
        report["levers"] = measure_levers(result, built[method], samples, data_rate, args, device)
    return report


def format_table(report: dict[str, Any]) -> str:
    columns = [
        ("model", "{}"), ("params", "{:,}"), ("train_gflops_per_image", "{:.2f}"), ("memory_format", "{}"),
        ("train_images_per_s", "{:.1f}"), ("train_gflops_per_s", "{:.1f}"), ("fraction_of_matmul_peak", "{:.0%}"),
        ("latency_ms", "{:.1f}"), ("peak_memory_mb", "{:.0f}"),
    ]  # fmt: skip
    columns += [(key, "{:.2f}x") for key in report["results"][0] if key.startswith("gflops_ratio_vs_")]
    lines = aligned(columns, report["results"])
    lines.append(
        f"fp32 matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s (median of the probes); data pipeline: "
        f"{report['data_images_per_s']:.0f} images/s = {report['data_to_training_ratio']:.1f}x the fastest training"
    )
    if "levers" in report:
        lines += [
            "",
            f"speed levers ({report['levers_model']}; train and data: images/s, latency: ms per image):",
        ]
        levers = [{**row, "value": row["value"] * (1e3 if row["kind"] == "latency" else 1),
                   "baseline": row["baseline"] * (1e3 if row["kind"] == "latency" else 1)} for row in report["levers"]]  # fmt: skip
        columns = [
            ("lever", "{}"),
            ("kind", "{}"),
            ("baseline", "{:.2f}"),
            ("value", "{:.2f}"),
            ("speedup", "{:.2f}x"),
        ]
        lines += aligned(columns, levers)
    return "\n".join(lines)


def aligned(columns: list[tuple[str, str]], records: list[dict[str, Any]]) -> list[str]:
    """Records as right-aligned text columns under a header line."""
    rows = [[fmt.format(record[key]) for key, fmt in columns] for record in records]
    widths = [max(len(key), *(len(r[i]) for r in rows)) for i, (key, _) in enumerate(columns)]
    lines = ["  ".join(key.rjust(w) for (key, _), w in zip(columns, widths, strict=True))]
    return lines + ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]


def parse_arguments(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="*", help="upsampling methods (default: every registered one)")
    parser.add_argument(
        "--peers", action="store_true", help="also measure MONAI BasicUNet and smp Unet(resnet18)"
    )
    parser.add_argument("--size", type=int, default=256, help="height and width of the input (default 256)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="timed training steps per model, taken in turn (median of the rounds)",
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed inference calls")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument(
        "--system-allocator", action="store_true",
        help="leave glibc's malloc defaults (as unet-train reuse_freed_memory=false)",
    )  # fmt: skip
    parser.add_argument(
        "--levers", action="store_true",
        help="also measure each speed lever (allocator, memory format, bf16, in-place activations, BatchNorm folding, loader workers, image caching)",
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true", help="with --levers, also time torch.compile (slow to build)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one step: checks that it runs")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(arguments)
    if args.quick:
        args.size, args.batch_size, args.depth, args.base_channels = 32, 2, 2, 8
        args.warmup, args.repeats, args.rounds = 1, 1, 1
    return args


def main(arguments: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_arguments(arguments)
    report = run_benchmark(args)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.json}")
    return report


if __name__ == "__main__":
    main()
