"""Timing on a machine whose speed drifts: medians, matmul probes and drift-corrected rates.

The reference machine is a shared VM whose speed drifts by ±15 % within minutes, so a step timed now
and another timed a minute later compare badly. :func:`interleaved_samples` times the steps in turn,
each between two matmul probes, and :func:`efficiency` divides each step's rate by the matmul rate
measured around it: measured so, ratios between models repeat within a few percent.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from unet.utils.errors import ConfigError

log = logging.getLogger(__name__)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that wall-clock time covers the work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones.

    The median, not the mean: on a shared machine one slow call (another process, a page fault)
    should not move the figure.
    """
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    times = []
    for index in range(warmup + repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    steps: Mapping[Hashable, Callable[[], None]],
    rounds: int,
    warmup: int,
    device: torch.device,
    probe_size: int = 1024,
    label: str = "steps",
) -> tuple[dict[Hashable, list[StepSample]], list[float]]:
    """``rounds`` samples of every step, taken in turn, each between two matmul probes; and all the probes.

    Every step first runs ``warmup`` untimed calls. Taking the steps in turn samples them over the same
    stretches of time; the probes (``probe_size`` square matrices) let :func:`efficiency` cancel what
    drift remains. ``label`` names the steps in the progress log.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[Hashable, list[StepSample]] = {key: [] for key in steps}
    probes = [matmul_gflops(device, probe_size)]
    for round_index in range(rounds):
        for key, step in steps.items():
            seconds = median_seconds(step, repeats=1, warmup=0, device=device)
            probes.append(matmul_gflops(device, probe_size))
            samples[key].append(StepSample(seconds, (probes[-2] + probes[-1]) / 2))
        log.info("%s: round %d/%d timed", label, round_index + 1, rounds)
    return samples, probes


def images_per_s(samples: Sequence[StepSample], batch_size: int) -> float:
    """Training images/s: the batch over the median step time (as measured, not drift-corrected)."""
    return batch_size / statistics.median(sample.seconds for sample in samples)


def efficiency(samples: Sequence[StepSample], flops_per_step: float = 1.0) -> float:
    """The median over samples of each step's FLOP/s divided by the matmul rate measured around it.

    With the FLOPs of a step it is the share of the matmul peak; with the default 1 it is a drift-corrected
    step rate, whose ratios between two steps are their speed ratio on a machine of constant speed.
    """
    return statistics.median(
        flops_per_step / sample.seconds / 1e9 / sample.matmul_gflops for sample in samples
    )
