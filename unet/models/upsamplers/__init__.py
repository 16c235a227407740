"""Decoder upsampling methods, one registered class each.

Importing this package imports every module in it, which registers each built-in method in
:data:`UPSAMPLERS`: a new method is one new module here holding a class decorated with
:func:`register_upsampler`, and nothing else changes.
"""

import importlib
import pkgutil

from unet.models.upsamplers.base import UPSAMPLERS, Upsampler, get_upsampler, register_upsampler

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["UPSAMPLERS", "Upsampler", "get_upsampler", "register_upsampler"]
