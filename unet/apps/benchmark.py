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
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from unet.allocator import reuse_freed_memory
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

# Memory formats every model is trained in; its row reports the faster one.
LAYOUTS = ("contiguous", "channels_last")


def matmul_peak_gflops(device: torch.device, size: int = 2048, repeats: int = 3, rounds: int = 3) -> float:
    """This machine's fp32 matrix-multiply rate: the ceiling convolutions can approach.

    The best of ``rounds`` timings of ``repeats`` products: the peak is what the hardware can do.
    """
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)

    def products() -> None:
        for _ in range(repeats):
            a @ b

    best = min(
        median_seconds(products, repeats=1, warmup=1 if index == 0 else 0, device=device)
        for index in range(rounds)
    )
    return 2 * size**3 * repeats / best / 1e9


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


def interleaved_training_rates(
    built: dict[str, nn.Module], args: argparse.Namespace, device: torch.device
) -> tuple[dict[tuple[str, str], float], float]:
    """Training images/s of every (model, memory format), and the matmul peak, measured in rounds.

    Each round times every model in turn and the matmul peak, and each figure is the median over the
    rounds: on a shared machine whose speed drifts during the run, every model and the peak are then
    sampled over the same stretches of time, so their ratios are fair.
    """
    shape = (args.in_channels, args.num_classes, args.size, args.size)
    steps = {
        (name, layout): training_step(model, args.batch_size, *shape, device=device, channels_last=layout == "channels_last")
        for name, model in built.items()
        for layout in LAYOUTS
    }  # fmt: skip
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    peaks = []
    for round_index in range(args.rounds):
        peaks.append(matmul_peak_gflops(device, size=256 if args.quick else 2048))
        for key, step in steps.items():
            warmup = args.warmup if round_index == 0 else 0
            seconds[key].append(median_seconds(step, args.steps, warmup, device))
        print(f"round {round_index + 1}/{args.rounds} timed", flush=True)
    rates = {key: args.batch_size / statistics.median(values) for key, values in seconds.items()}
    return rates, statistics.median(peaks)


def measure_model(
    name: str,
    model: nn.Module,
    rates: dict[tuple[str, str], float],
    peak: float,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Every number of one model, in whichever memory format trains it faster."""
    throughput = {layout: rates[(name, layout)] for layout in LAYOUTS}
    layout = max(throughput, key=throughput.get)
    channels_last = layout == "channels_last"
    train_flops = training_flops_per_image(model, args.in_channels, args.num_classes, args.size, args.size)
    achieved = throughput[layout] * train_flops / 1e9
    return {
        "model": name,
        "params": count_parameters(model),
        "forward_gflops_per_image": flops_per_image(model, args.in_channels, args.size, args.size) / 1e9,
        "train_gflops_per_image": train_flops / 1e9,
        "memory_format": layout,
        "train_images_per_s": throughput[layout],
        **{f"train_images_per_s_{key}": value for key, value in throughput.items()},
        "train_gflops_per_s": achieved,
        "fraction_of_matmul_peak": achieved / peak,
        "latency_ms": 1e3 * latency(model, args, device, channels_last),
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


def synthetic_datamodule(args: argparse.Namespace, batches: int, **options: Any) -> SegmentationDataModule:
    """The default synthetic datamodule at the benchmark's size: ``batches`` training batches, in memory.

    ``options``: the datamodule's loader keywords (``num_workers``, 0 unless given; ``pin_memory``).
    """
    return SyntheticDataModule(
        num_train=args.batch_size * batches, num_val=1, num_test=0, image_size=args.size,
        in_channels=args.in_channels, batch_size=args.batch_size, **{"num_workers": 0, **options},
    )  # fmt: skip


def write_png_folder(root: Path, args: argparse.Namespace, batches: int) -> Path:
    """Synthetic images and masks as PNG files in ``root/{train,val}/{images,masks}``, as users' data arrives."""
    for split, count in (("train", args.batch_size * batches), ("val", 1)):
        source = synthetic_datamodule(args, batches).split_source(split)
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
        root=str(root), num_classes=len(CLASS_NAMES), in_channels=args.in_channels, batch_size=args.batch_size, **options
    )  # fmt: skip


def data_throughput(datamodule: SegmentationDataModule, device: torch.device | None = None) -> float:
    """Images/s the datamodule's training loader delivers (augmentation included), onto ``device`` if given.

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
    model: nn.Module, baseline: dict[str, Any], args: argparse.Namespace, device: torch.device
) -> list[dict[str, Any]]:
    """Each speed lever against the baseline (fp32, eager, the model's better memory format).

    Training levers are compared in images/s, inference ones in latency, data ones in images/s.
    """
    shape = (args.in_channels, args.num_classes, args.size, args.size)
    channels_last = baseline["memory_format"] == "channels_last"

    def train(candidate: nn.Module = model, **options: Any) -> float:
        options = {"channels_last": channels_last, **options}
        return training_throughput(
            candidate, args.batch_size, *shape, steps=args.steps, warmup=args.warmup, device=device, **options
        )

    base_train = train()
    reuse_freed_memory(False)
    system_allocator = train()
    reuse_freed_memory(not args.system_allocator)
    rows = [
        {"lever": "freed-memory reuse (reuse_freed_memory)", "kind": "train", "value": base_train, "baseline": system_allocator},
        {"lever": "channels_last memory format", "kind": "train", "value": baseline["train_images_per_s_channels_last"], "baseline": baseline["train_images_per_s_contiguous"]},
        {"lever": "bf16 autocast", "kind": "train", "value": train(autocast_dtype=torch.bfloat16), "baseline": base_train},
        {"lever": "in-place activations off", "kind": "train", "value": train(without_inplace_activations(model)), "baseline": base_train},
    ]  # fmt: skip
    if args.compile:
        rows.append(
            {"lever": "torch.compile", "kind": "train", "value": train(compile=True), "baseline": base_train}
        )
    base_latency = latency(model, args, device, channels_last)
    rows.append(
        {"lever": "conv-BatchNorm folding", "kind": "latency", "value": latency(fold_batch_norms(model), args, device, channels_last), "baseline": base_latency}
    )  # fmt: skip
    rows += measure_data_levers(args, device)
    for row in rows:
        row["speedup"] = (
            row["baseline"] / row["value"] if row["kind"] == "latency" else row["value"] / row["baseline"]
        )
    return rows


def measure_data_levers(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Loader workers, decoded-image caching and (on CUDA) pinned memory, in delivered images/s.

    Workers are measured on in-memory data and on PNG files decoded on access, where decoding is the work
    they could share; caching and decoding use a temporary folder of synthetic PNGs at the benchmark size.
    """
    batches = 2 if args.quick else 20
    workers = default_num_workers()

    def synthetic(**options: Any) -> float:
        return data_throughput(synthetic_datamodule(args, batches, **options))

    rows = [
        {"lever": f"{workers} data-loader workers (in-memory data)", "kind": "data", "value": synthetic(num_workers=workers), "baseline": synthetic()},
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
    return rows


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
    rates, peak = interleaved_training_rates(built, args, device)
    results = [measure_model(name, model, rates, peak, args, device) for name, model in built.items()]
    for row in results:
        for peer in peers:
            peer_row = next(r for r in results if r["model"] == peer)
            row[f"gflops_ratio_vs_{peer}"] = row["train_gflops_per_s"] / peer_row["train_gflops_per_s"]
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
        "matmul_peak_gflops": peak,
        "data_images_per_s": data_rate,
        "data_to_training_ratio": data_rate / fastest_training,
        "results": results,
    }
    if args.levers:
        # The framework's default method, when it was measured.
        method = "bilinear" if "bilinear" in methods else methods[0]
        report["levers_model"] = method
        report["levers"] = measure_levers(built[method], results[methods.index(method)], args, device)
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
        f"fp32 matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s (median of the rounds); data pipeline: "
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
        "--steps", type=int, default=2, help="timed training steps per model and round (median)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all models (median of the rounds)")
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
        args.steps, args.warmup, args.repeats, args.rounds = 1, 1, 1, 1
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
