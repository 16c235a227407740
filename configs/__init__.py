"""Hydra configs, shipped inside the package as ``unet.configs`` (see pyproject.toml).

Hydra imports this package to read the configs, which registers the resolvers they use, whichever
command (or test, or sweeper plugin) composes them:

- ``${upsamplers:}``: every registered upsampling method, comma-separated, from the registry
  (``unet.models.UPSAMPLERS``), so no config types the list out;
- ``${network_name:<_target_>,<upsample>}``: what a run is filed under (its method, or for a
  network without one the name of its callable).
"""

from omegaconf import OmegaConf

from unet.models import UPSAMPLERS
from unet.models.networks import network_name

OmegaConf.register_new_resolver("upsamplers", lambda: ", ".join(sorted(UPSAMPLERS)), replace=True)
OmegaConf.register_new_resolver(
    "network_name",
    lambda target, upsample=None: network_name({"_target_": target, "upsample": upsample}),
    replace=True,
)
