"""U-Net segmentation framework: one config key chooses the decoder's upsampling method.

``unet.train``, ``unet.load``, ``unet.compare``, ``unet.evaluate``, ``unet.plan`` and
``unet.check_data`` are the Python API (:mod:`unet.api`, docs/python-api.md), imported on first use: a
bare ``import unet``, which every command makes, loads neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# The names of unet.api that the package offers (PEP 562: looked up when first asked for).
API = ("train", "load", "compare", "evaluate", "plan", "check_data", "Run", "Comparison", "Model")


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module("unet.api"), name)
    raise AttributeError(f"module 'unet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
