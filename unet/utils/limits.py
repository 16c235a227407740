"""Limits on sizes a config sets, checked before anything is allocated by them (plain Python and numpy:
every layer uses it, and a command checks them before torch loads)."""

from __future__ import annotations

import functools
import numbers
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from unet.utils.errors import ConfigError

# Masks hold class indices in at most 16 bits (unet-predict writes uint16 masks past 256 classes).
MAX_CLASSES = 2**16


def check_num_classes(value: Any, key: str = "num_classes") -> None:
    """Refuse a class count that is a typo (``10_000_000``, ``0``) before anything is sized by it: per-class
    statistics, K x K confusion matrices and the network's last layer would take gigabytes."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    if value > MAX_CLASSES:
        raise ConfigError(
            f"{key}={value:,} is more than a mask can index: at most {MAX_CLASSES:,} classes "
            "(masks hold class indices in 8 or 16 bits)"
        )


# What a class count costs, per element: float32 logits, int64 confusion-matrix counts.
LOGIT_BYTES = 4
COUNT_BYTES = 8
# Copies of the logits a training step holds at once: the logits, their softmax, and the gradient of each.
LOGIT_COPIES = 4
# Confusion matrices (K x K) a run keeps: one per split (train, val, test), and one image's in the final scoring.
CONFUSION_MATRICES = 4
GB = 1024**3


@dataclass(frozen=True)
class ClassCountMemory:
    """The memory ``num_classes`` costs a training step of ``batch`` crops of ``height`` x ``width``."""

    num_classes: int
    batch: int
    height: int
    width: int

    @property
    def logits(self) -> int:
        """Bytes of the logits (B, K, H, W) and the tensors of their size a step holds."""
        return LOGIT_COPIES * self.batch * self.num_classes * self.height * self.width * LOGIT_BYTES

    @property
    def confusion(self) -> int:
        """Bytes of the run's K x K confusion matrices."""
        return CONFUSION_MATRICES * self.num_classes**2 * COUNT_BYTES

    @property
    def total(self) -> int:
        return self.logits + self.confusion

    def describe(self) -> str:
        return (
            f"{self.total / GB:,.1f} GB: {CONFUSION_MATRICES} confusion matrices of {self.num_classes:,} x "
            f"{self.num_classes:,} ({self.confusion / GB:,.1f} GB) and logits of {self.batch} x "
            f"{self.num_classes:,} x {self.height} x {self.width} with their gradients ({self.logits / GB:,.1f} GB)"
        )


# What a class count costs in time, in units this machine is timed in (MachineRate): float32 element-wise
# passes over the logits per training step (the head's convolution, softmax, cross-entropy, Dice's one-hot
# and their gradients), small-array operations per class per validation batch (boundary F1's pass over
# each class, the class's scores and their logging), and passes over a K x K matrix per epoch's scores.
LOGIT_PASSES = 40
CLASS_OPERATIONS = 1500
CONFUSION_PASSES = 4


@dataclass(frozen=True)
class MachineRate:
    """How fast this machine is at what a class count multiplies: one float32 element-wise pass, per
    element, and one operation on a small array (its fixed cost), in seconds."""

    element_seconds: float
    operation_seconds: float


@functools.cache
def machine_rate() -> MachineRate:
    """This machine's :class:`MachineRate`, timed with numpy in a few milliseconds (the fastest of a few
    tries: a busy machine's slowest are its neighbours')."""
    # logits outgrow the caches: the pass is timed over more memory than they hold
    data, out, small = np.ones(1 << 23, np.float32), np.empty(1 << 23, np.float32), np.ones(4, np.float32)
    passes, operations = [], []
    for _ in range(3):
        start = time.perf_counter()
        np.multiply(data, data, out=out)
        passes.append((time.perf_counter() - start) / data.size)
        start = time.perf_counter()
        for _ in range(200):
            small.sum()
        operations.append((time.perf_counter() - start) / 200)
    return MachineRate(min(passes), min(operations))


@dataclass(frozen=True)
class ClassCountTime:
    """The time ``num_classes`` costs a training step of ``batch`` crops of ``height`` x ``width``, and a
    validation batch, at this machine's ``rate``: an estimate to an order of magnitude, for the classes
    alone (the network's own work comes on top)."""

    num_classes: int
    batch: int
    height: int
    width: int
    rate: MachineRate

    @property
    def step_seconds(self) -> float:
        logits = self.batch * self.num_classes * self.height * self.width
        return LOGIT_PASSES * logits * self.rate.element_seconds

    @property
    def validation_seconds(self) -> float:
        """A validation batch's, its epoch's scores from the K x K matrix included."""
        per_class = CLASS_OPERATIONS * self.num_classes * self.rate.operation_seconds
        return per_class + CONFUSION_PASSES * self.num_classes**2 * self.rate.element_seconds

    def describe(self) -> str:
        return (
            f"about {_duration(self.step_seconds)} a training step and {_duration(self.validation_seconds)} "
            "a validation batch for its classes alone"
        )


def _duration(seconds: float) -> str:
    return f"{seconds:,.2g} s" if seconds < 100 else f"{seconds / 60:,.0f} min"


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (``None`` where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_classes_fit(
    estimate: ClassCountMemory,
    key: str,
    seconds: ClassCountTime | None = None,
    memory: int | None = None,
    budget_s: float | None = None,
) -> None:
    """Refuse, naming both estimates, a class count whose tensors would not fit this machine's memory
    (``memory`` bytes; default: :func:`machine_memory`), or whose first training step and validation batch
    would take more than the run's budget (``budget_s``), before anything is allocated."""
    memory = machine_memory() if memory is None else memory
    time_text = f" and {seconds.describe()}" if seconds is not None else ""
    if memory is not None and estimate.total > memory:
        smaller_step = " (or a smaller data.batch_size and crop)" if estimate.confusion < memory else ""
        raise ConfigError(
            f"{key}={estimate.num_classes:,} needs at least {estimate.describe()}{time_text}; this machine "
            f"has {memory / GB:,.1f} GB: use fewer classes{smaller_step}"
        )
    if (
        seconds is not None
        and budget_s is not None
        and seconds.step_seconds + seconds.validation_seconds > budget_s
    ):
        raise ConfigError(
            f"{key}={estimate.num_classes:,} needs {seconds.describe()} (and {estimate.describe()}); "
            f"trainer.max_time is {_duration(budget_s)}: use fewer classes or a longer trainer.max_time"
        )
