"""What a model costs on this machine: parameters, FLOPs, training throughput, latency and peak memory.

Accuracy alone does not choose an upsampler; these numbers are the other side of the trade-off.
Every measurement runs on a deep copy of the model, so the caller's model keeps its device, its
train/eval mode and its parameters (an optimizer step on the original would change the weights).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import threading
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unet.models import UNet
from unet.models.sizing import count_parameters
from unet.profiling.timing import efficiency, interleaved_samples, median_seconds
from unet.utils.runtime import peak_resident_bytes, release_freed_memory

# The cost columns of the comparison report, in the order :func:`measure_costs` returns them.
COST_KEYS = ("params", "upsampler_params", "gflops", "train_images_per_s", "latency_ms", "peak_memory_mb")


@dataclass(frozen=True)
class InputSpec:
    """The input costs are measured on: batches of ``(batch_size, in_channels, height, width)`` images
    labelled with ``num_classes`` classes (inference latency takes one image of it)."""

    in_channels: int
    num_classes: int
    height: int
    width: int
    batch_size: int = 8

    def images(
        self, device: torch.device, channels_last: bool = False, batch_size: int | None = None
    ) -> torch.Tensor:
        """A ``(B, C, H, W)`` batch of standard-normal images in the asked memory format."""
        shape = (batch_size or self.batch_size, self.in_channels, self.height, self.width)
        images = torch.randn(*shape, device=device)
        return images.contiguous(memory_format=torch.channels_last) if channels_last else images

    def targets(self, device: torch.device, batch_size: int | None = None) -> torch.Tensor:
        """``(B, H, W)`` random class labels."""
        shape = (batch_size or self.batch_size, self.height, self.width)
        return torch.randint(0, self.num_classes, shape, device=device)


def upsampler_parameters(model: UNet) -> int:
    """Parameters of the decoder's upsamplers alone: the part of the model the method choice changes."""
    return sum(count_parameters(stage.upsample) for stage in model.decoder)


def _working_copy(model: nn.Module, device: str | torch.device, channels_last: bool) -> nn.Module:
    """A deep copy on ``device`` (in channels-last layout if asked), leaving ``model`` untouched."""
    working = copy.deepcopy(model).to(device)
    return working.to(memory_format=torch.channels_last) if channels_last else working


@torch.no_grad()
def flops_per_image(model: nn.Module, spec: InputSpec) -> float:
    """Forward FLOPs for one image of ``spec`` in eval mode.

    Counted by :class:`~torch.utils.flop_counter.FlopCounterMode`, which counts a multiply-add as 2
    FLOPs and counts only matmuls and convolutions (transposed ones included); norms, activations
    and interpolation are left out, as they are small next to the convolutions.
    """
    working = copy.deepcopy(model).eval()
    device = next(working.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        working(spec.images(device, batch_size=1))
    return float(counter.get_total_flops())


def training_flops_per_image(model: nn.Module, spec: InputSpec) -> float:
    """FLOPs of one training step (forward + backward) per image, counted like :func:`flops_per_image`.

    This is the work a training throughput is made of, so ``images/s x training FLOPs`` is the
    achieved training FLOP/s, comparable between models of different widths.
    """
    working = copy.deepcopy(model).train()
    device = next(working.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(
            working(spec.images(device, batch_size=2)), spec.targets(device, batch_size=2)
        ).backward()
    return float(counter.get_total_flops()) / 2


def training_step(
    model: nn.Module,
    spec: InputSpec,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    autocast_dtype: torch.dtype | None = None,
    compile: bool = False,
) -> Callable[[], None]:
    """A closure running one forward + cross-entropy backward + AdamW step on a copy, on fixed random data.

    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the forward under mixed-precision autocast;
    ``compile`` compiles the copy with ``torch.compile`` (the first call then pays the compilation).
    """
    device = torch.device(device)
    working = _working_copy(model, device, channels_last).train()
    if compile:
        working.compile()
    optimizer = torch.optim.AdamW(working.parameters(), lr=1e-3)
    images, target = spec.images(device, channels_last), spec.targets(device)
    precision = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision:
            loss = F.cross_entropy(working(images), target)
        loss.backward()
        optimizer.step()

    return step


def training_throughput(
    model: nn.Module,
    spec: InputSpec,
    steps: int = 10,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    autocast_dtype: torch.dtype | None = None,
    compile: bool = False,
) -> float:
    """Training images per second (forward, cross-entropy backward, AdamW step): batch / median step time.

    Not drift-corrected: for comparisons between models use :func:`measure_costs`.
    """
    device = torch.device(device)
    step = training_step(model, spec, device, channels_last, autocast_dtype, compile)
    return spec.batch_size / median_seconds(step, steps, warmup, device)


def inference_latency(
    model: nn.Module,
    spec: InputSpec,
    repeats: int = 20,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> float:
    """Seconds per image at batch 1 in eval and inference mode: the median of ``repeats`` timed calls."""
    device = torch.device(device)
    working = _working_copy(model, device, channels_last).eval()
    image = spec.images(device, channels_last, batch_size=1)
    with torch.inference_mode():
        return median_seconds(lambda: working(image), repeats, warmup, device)


def _resident_bytes() -> int:
    """The process's resident set size now (Linux ``/proc``), else its lifetime peak from ``resource``."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # A high-water mark: it only sees a call whose peak exceeds every earlier one, so this
        # fallback can under-report.
        return peak_resident_bytes()


def _peak_cuda_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - baseline)


def _peak_cpu_bytes(fn: Callable[[], Any], interval_s: float) -> int:
    release_freed_memory()  # memory kept for reuse would otherwise serve fn() without growing the RSS
    baseline = _resident_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _resident_bytes())
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
        peak = max(peak, _resident_bytes())  # what the result still holds counts too
        del result
    finally:
        done.set()
        sampler.join()
    return max(0, peak - baseline)


def peak_memory_bytes(
    fn: Callable[[], Any], device: str | torch.device = "cpu", interval_s: float = 0.002
) -> int:
    """Peak memory ``fn()`` uses on top of what was in use before the call, in bytes.

    On CUDA this is exact: the allocator's peak of allocated tensor memory. On CPU it is an
    approximation from the process's resident set size, sampled every ``interval_s`` by a
    background thread: a spike shorter than the interval can be missed, memory other threads
    allocate meanwhile is counted, and memory the allocator keeps cached after an earlier call is
    not counted again (memory kept for reuse is handed back first, so the call's working set shows).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _peak_cuda_bytes(fn, device)
    return _peak_cpu_bytes(fn, interval_s)


def training_peak_memory_mb(model: nn.Module, spec: InputSpec, device: str | torch.device = "cpu") -> float:
    """Peak memory (MiB) of a model copy's first training step: activations, gradients and AdamW state.

    The copy's weights and the batch are in place before the step, so they are not counted.
    """
    step = training_step(model, spec, device=device)
    return peak_memory_bytes(step, device) / 2**20


def measure_costs(
    models: Mapping[str, nn.Module],
    spec: InputSpec,
    device: str | torch.device = "cpu",
    rounds: int = 5,
    warmup: int = 2,
    repeats: int = 20,
) -> dict[str, dict[str, float]]:
    """Every cost column of the comparison report (:data:`COST_KEYS`, in that order) for each model.

    The models' training steps (contiguous layout) are timed in turn, ``rounds`` times, each between two
    matmul probes (:func:`~unet.profiling.timing.interleaved_samples`), so ``train_images_per_s``
    compares models fairly on a machine whose speed drifts: it is each model's drift-corrected rate
    (:func:`~unet.profiling.timing.efficiency`) at the run's median matmul rate. ``upsampler_params``
    is NaN ("not applicable") for a network that is not a :class:`~unet.models.UNet`. Latency is the
    median of ``repeats`` batch-1 calls after ``warmup``; peak memory is that of one training step
    (:func:`training_peak_memory_mb`).
    """
    device = torch.device(device)
    steps = {name: training_step(model, spec, device=device) for name, model in models.items()}
    samples, probes = interleaved_samples(steps, rounds, warmup, device, label="costs")
    median_matmul_gflops = statistics.median(probes)
    costs = {}
    for name, model in models.items():
        costs[name] = {
            "params": count_parameters(model),
            "upsampler_params": upsampler_parameters(model) if isinstance(model, UNet) else math.nan,
            "gflops": flops_per_image(model, spec) / 1e9,
            # Images per step-FLOP-of-matmul (drift-corrected), times the median matmul FLOP/s.
            "train_images_per_s": efficiency(samples[name], spec.batch_size) * median_matmul_gflops * 1e9,
            "latency_ms": 1e3 * inference_latency(model, spec, repeats, warmup, device),
            "peak_memory_mb": training_peak_memory_mb(model, spec, device=device),
        }
    return costs
