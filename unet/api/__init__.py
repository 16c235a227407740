"""The Python API: every command as a function, composing the command's config from keywords and
running the library function the command runs (docs/python-api.md).

``import unet`` exposes these names lazily (``unet.train``...): this package imports torch and
Lightning, the top-level package does not.
"""

from unet.api.jobs import command_config
from unet.api.model import Model, load
from unet.api.runs import Comparison, Run, check_data, compare_methods, evaluate, plan, train

__all__ = [
    "Comparison",
    "Model",
    "Run",
    "check_data",
    "command_config",
    "compare_methods",
    "evaluate",
    "load",
    "plan",
    "train",
]
