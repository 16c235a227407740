"""A run's wall-clock budget, ``trainer.max_time``: read once, into seconds.

The plan sizes the run from these seconds and Lightning's Trainer gets them as a ``timedelta``, so the
value a user typed is parsed by this one function only (Lightning never parses it again).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from unet.utils.errors import ConfigError

MAX_TIME_KEY = "trainer.max_time"
MAX_TIME_FORMS = (
    "seconds (300), DD:HH:MM:SS (00:00:05:00) or a map of days/hours/minutes/seconds ({minutes: 5})"
)
MAX_TIME_UNITS = ("days", "hours", "minutes", "seconds")


def max_time_seconds(value: Any) -> float | None:
    """``trainer.max_time`` in seconds (``None``: no time budget); a value of another form, or not over
    zero, is a :class:`~unet.utils.errors.ConfigError` naming the key and the forms it takes."""
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{MAX_TIME_KEY}={value!r}: expected a time over zero: {MAX_TIME_FORMS}")
    return seconds


def max_time_timedelta(value: Any) -> datetime.timedelta | None:
    """``trainer.max_time`` as Lightning's Trainer takes it, from :func:`max_time_seconds`."""
    seconds = max_time_seconds(value)
    return None if seconds is None else datetime.timedelta(seconds=seconds)


def _seconds(value: Any) -> float | None:
    """The seconds ``value`` says, or ``None`` when it is none of the forms."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        if not value or not set(value) <= set(MAX_TIME_UNITS):
            return None
        parts = [_number(part) for part in value.values()]
        return None if None in parts else sum(p * _unit(u) for p, u in zip(parts, value, strict=True))
    if isinstance(value, str):
        plain = _number(value)
        if plain is not None:
            return plain
        parts = [_number(part) for part in value.split(":")]
        if len(parts) != len(MAX_TIME_UNITS) or None in parts:
            return None
        return sum(p * _unit(u) for p, u in zip(parts, MAX_TIME_UNITS, strict=True))
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _unit(unit: str) -> float:
    return datetime.timedelta(**{unit: 1}).total_seconds()
