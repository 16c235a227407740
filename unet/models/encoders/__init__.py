"""U-Net encoders, one registered builder each: the plain ``unet`` encoder and torchvision backbones.

Importing this package imports every module in it, which registers each built-in encoder in
:data:`ENCODERS`: a new encoder is a registered builder in a module here, and nothing else changes.
"""

import importlib
import pkgutil

from unet.models.encoders.base import ENCODERS, Encoder, get_encoder, pretrained_statistics, register_encoder

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ENCODERS", "Encoder", "get_encoder", "pretrained_statistics", "register_encoder"]
