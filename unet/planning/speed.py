"""Training speed of a network on this machine, measured once per machine and configuration.

The planner sizes a run from how fast a training step is here, not from a typed-in guess: the CPU model
changes between machines (bf16 trains 1.8x faster on one, 50x slower on another), so precision and
memory layout are measured, and the step rate gives how much data a time budget can see. A measurement
takes seconds; it is cached as JSON under ``<cache_dir>/speed/`` keyed by the machine (CPU or GPU model,
threads, torch version) and what was timed, so repeated runs (seeds, compared methods) plan alike.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unet.models.networks import build_network
from unet.profiling.costs import InputSpec, training_step
from unet.profiling.machine import cpu_flags, machine_name
from unet.profiling.timing import median_seconds
from unet.utils.files import write_json
from unet.utils.layouts import MEMORY_FORMATS

SPEED_FORMAT = 2
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class StepTiming:
    """What to time: a network config (complete, see :func:`unet.models.networks.network_config`),
    a ``(batch, channels, patch, patch)`` input, the device, and the precisions and layouts to try
    (those the config leaves to the plan)."""

    network: Mapping[str, Any]
    batch_size: int
    patch: int
    num_classes: int
    device: str
    precisions: tuple[str, ...] = PRECISIONS
    layouts: tuple[str, ...] = tuple(MEMORY_FORMATS)

    def spec(self) -> InputSpec:
        channels = int(self.network["in_channels"])
        return InputSpec(channels, self.num_classes, self.patch, self.patch, batch_size=self.batch_size)


def bf16_supported(device: str) -> bool:
    """Whether bf16 autocast has hardware behind it: a GPU that says so, or a CPU oneDNN runs bf16 on
    (AVX-512 or AMX; elsewhere a bf16 step is emulated, ~50x slower, and not worth a timing)."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def measure_step_rates(timing: StepTiming, repeats: int = 3, warmup: int = 2) -> dict[str, float]:
    """Training images per second for every precision x memory layout, keyed ``"<precision>/<layout>"``:
    ``batch / median step time`` over ``repeats`` steps after ``warmup`` (kernel choice, caches).
    bf16 is left out where :func:`bf16_supported` says no."""
    device = torch.device(timing.device)
    network = build_network(timing.network)
    spec = timing.spec()
    rates: dict[str, float] = {}
    for precision in timing.precisions:
        dtype = torch.bfloat16 if precision == "bf16-mixed" else None
        if dtype is not None and not bf16_supported(timing.device):
            continue
        for layout in timing.layouts:
            step = training_step(
                network, spec, device, channels_last=layout == "channels_last", autocast_dtype=dtype
            )
            rates[f"{precision}/{layout}"] = timing.batch_size / median_seconds(step, repeats, warmup, device)
    return rates


def step_rates(timing: StepTiming, cache_dir: str | Path | None) -> tuple[dict[str, float], bool]:
    """:func:`measure_step_rates`, cached; returns the rates and whether they came from the cache."""
    identity = {
        "format": SPEED_FORMAT,
        "machine": machine_name(timing.device),
        "flags": cpu_flags() if timing.device == "cpu" else "",
        "torch": torch.__version__,
        "network": dict(timing.network),
        "batch_size": timing.batch_size,
        "patch": timing.patch,
        "num_classes": timing.num_classes,
        "precisions": list(timing.precisions),
        "layouts": list(timing.layouts),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = None if cache_dir is None else Path(cache_dir).expanduser() / "speed" / f"{key}.json"
    if path is not None:
        try:
            document = json.loads(path.read_text())
            if document.get("key") == key:
                return {str(k): float(v) for k, v in document["rates"].items()}, True
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    rates = measure_step_rates(timing)
    if path is not None:
        try:
            write_json(path, {"key": key, "identity": identity, "rates": rates})
        except OSError as error:
            warnings.warn(f"speed measurement not cached: {error}", stacklevel=2)
    return rates, False
