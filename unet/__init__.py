"""U-Net segmentation framework: one config key chooses the decoder's upsampling method.

``unet.train``, ``unet.load``, ``unet.compare_methods``, ``unet.evaluate``, ``unet.plan`` and
``unet.check_data`` are the Python API (:mod:`unet.api`, docs/python-api.md), imported on first use: a
bare ``import unet``, which every command makes, loads neither torch nor Lightning. (``unet.compare`` is
the comparison's package, which ``import unet.compare`` would set as that attribute: hence
``compare_methods``.)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# The names of unet.api that the package offers (PEP 562: looked up when first asked for).
API = ("train", "load", "compare_methods", "evaluate", "plan", "check_data", "Run", "Comparison", "Model")


def __getattr__(name: str) -> Any:
    if name == "api" or name in API:
        api = importlib.import_module("unet.api")
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'unet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "api", *API})
