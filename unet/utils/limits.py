"""Limits on sizes a config sets, checked before anything is allocated by them (plain Python: every layer uses it)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any

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
# Confusion matrices (K x K) a run keeps: one per split (train, val, test).
CONFUSION_MATRICES = 3
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


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (``None`` where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_classes_fit(estimate: ClassCountMemory, key: str, memory: int | None = None) -> None:
    """Refuse, naming the estimate, a class count whose tensors would not fit this machine's memory
    (``memory`` bytes; default: :func:`machine_memory`), before anything is allocated."""
    memory = machine_memory() if memory is None else memory
    if memory is not None and estimate.total > memory:
        smaller_step = " (or a smaller data.batch_size and crop)" if estimate.confusion < memory else ""
        raise ConfigError(
            f"{key}={estimate.num_classes:,} needs at least {estimate.describe()}; this machine has "
            f"{memory / GB:,.1f} GB: use fewer classes{smaller_step}"
        )
