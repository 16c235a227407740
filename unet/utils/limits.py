"""Limits on sizes a config sets, checked before anything is allocated by them (plain Python: every layer uses it)."""

from __future__ import annotations

import numbers
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
