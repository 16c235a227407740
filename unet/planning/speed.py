"""Training and validation speed of a network on this machine, measured once per machine and configuration.

The planner sizes a run from how fast a training step is here, not from a typed-in guess: the CPU model
changes between machines (bf16 trains 1.8x faster on one, 50x slower on another), so precision and
memory layout are measured, and the step rate gives how much data a time budget can see. A measurement
takes seconds; it is cached as JSON under ``<cache_dir>/speed/`` keyed by the machine (CPU or GPU model,
threads, torch version) and what was timed, so repeated runs (seeds, compared methods) plan alike.
A validation image is timed too (:func:`validation_seconds`): a whole image in eval mode costs what
its pixels at training speed do not tell (memory traffic of a large activation, a different kernel).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unet.evaluation.boundary import boundary_counts_per_image
from unet.evaluation.checkerboard import checkerboard_energies
from unet.models.networks import build_network
from unet.profiling.costs import InputSpec, training_step
from unet.profiling.machine import cpu_flags, machine_name
from unet.profiling.timing import median_seconds
from unet.utils.class_maps import class_map
from unet.utils.files import write_json
from unet.utils.layouts import MEMORY_FORMATS

# 3: a validation image's time includes scoring it (loss, class map, confusion, boundary F1, checkerboard).
SPEED_FORMAT = 3
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


def _machine_identity(device: str) -> dict[str, Any]:
    return {
        "format": SPEED_FORMAT,
        "machine": machine_name(device),
        "flags": cpu_flags() if device == "cpu" else "",
        "torch": torch.__version__,
    }


def _cached(
    identity: Mapping[str, Any], cache_dir: str | Path | None, measure: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], bool]:
    """``measure()``'s numbers, read from ``<cache_dir>/speed/`` when measured before for ``identity``
    (else measured and written there); and whether they came from the cache."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = None if cache_dir is None else Path(cache_dir).expanduser() / "speed" / f"{key}.json"
    if path is not None:
        try:
            document = json.loads(path.read_text())
            if document.get("key") == key:
                return {str(k): float(v) for k, v in document["rates"].items()}, True
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    rates = measure()
    if path is not None:
        try:
            write_json(path, {"key": key, "identity": dict(identity), "rates": rates})
        except OSError as error:
            warnings.warn(f"speed measurement not cached: {error}", stacklevel=3)
    return rates, False


def forget_measurements(cache_dir: str | Path | None, machine: str) -> int:
    """Remove the speeds cached for ``machine`` (:func:`~unet.profiling.machine.machine_name`) with this
    torch, so the next plan measures again; returns how many. A run whose steps went much faster than
    planned calls it: a measurement taken under more load would otherwise plan every later run."""
    folder = None if cache_dir is None else Path(cache_dir).expanduser() / "speed"
    if folder is None or not folder.is_dir():
        return 0
    removed = 0
    for path in folder.glob("*.json"):
        try:
            identity = json.loads(path.read_text())["identity"]
            mine = identity["machine"] == machine and identity["torch"] == torch.__version__
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a measurement of ours, or being written: left as it is
        if mine:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def step_rates(timing: StepTiming, cache_dir: str | Path | None) -> tuple[dict[str, float], bool]:
    """:func:`measure_step_rates`, cached; returns the rates and whether they came from the cache."""
    identity = {
        **_machine_identity(timing.device),
        "network": dict(timing.network),
        "batch_size": timing.batch_size,
        "patch": timing.patch,
        "num_classes": timing.num_classes,
        "precisions": list(timing.precisions),
        "layouts": list(timing.layouts),
    }
    return _cached(identity, cache_dir, lambda: measure_step_rates(timing))


@dataclass(frozen=True)
class ValidationTiming:
    """One validation image to time: a network config (with its ``input_scale``), a ``(height, width)``
    image at the data's resolution, the device, precision and memory layout the run trains with."""

    network: Mapping[str, Any]
    height: int
    width: int
    device: str
    precision: str = "32-true"
    layout: str = "contiguous"


@torch.no_grad()
def measure_validation_seconds(timing: ValidationTiming, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds to predict and score one whole validation image here, as a validation step does:
    the forward in eval mode (autocast for ``bf16-mixed``), then at the data's resolution the loss
    (cross-entropy stands for it), the class map, the confusion matrix, boundary F1 and the checkerboard
    score. Scoring grows with the classes: at 11 it can cost more than the forward."""
    device = torch.device(timing.device)
    network = build_network(timing.network).to(device).eval()
    classes = int(timing.network["num_classes"])
    image = torch.randn(1, int(timing.network["in_channels"]), timing.height, timing.width, device=device)
    target = torch.randint(0, classes, (1, timing.height, timing.width), device=device)
    if timing.layout == "channels_last":
        network, image = (
            network.to(memory_format=torch.channels_last),
            image.contiguous(memory_format=torch.channels_last),
        )
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if timing.precision == "bf16-mixed"
        else nullcontext()
    )

    def predict_and_score() -> None:
        with autocast:
            logits = network(image)
        logits = logits.float()
        F.cross_entropy(logits, target)
        predictions = class_map(logits)
        torch.bincount(target.flatten() * classes + predictions.flatten(), minlength=classes * classes)
        boundary_counts_per_image(predictions, target, classes)
        checkerboard_energies(logits)

    return median_seconds(predict_and_score, repeats, warmup, device)


def validation_seconds(timing: ValidationTiming, cache_dir: str | Path | None) -> tuple[float, bool]:
    """:func:`measure_validation_seconds`, cached; returns the seconds and whether they came from the cache."""
    identity = {
        **_machine_identity(timing.device),
        "validation": {**dict(timing.network), "height": timing.height, "width": timing.width},
        "precision": timing.precision,
        "layout": timing.layout,
    }
    measured, cached = _cached(
        identity, cache_dir, lambda: {"seconds_per_image": measure_validation_seconds(timing)}
    )
    return measured["seconds_per_image"], cached
