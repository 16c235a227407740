"""Hydra configs, shipped inside the package as ``unet.configs`` (see pyproject.toml).

Hydra imports this package to read the configs, which registers the resolvers they use, whichever
command (or test, or sweeper plugin) composes them:

- ``${upsamplers:}``: every registered upsampling method, comma-separated, from the registry
  (``unet.models.UPSAMPLERS``), so no config types the list out;
- ``${network_name:<_target_>,<upsample>}``: what a run is filed under (its method, or for a
  network without one the name of its callable).

Each resolver imports the models (and so torch) only when a config is resolved that uses it: every
command composes these configs, and ``--help`` or a config error must answer without loading torch.
"""

from omegaconf import OmegaConf


def _upsamplers() -> str:
    from unet.models import UPSAMPLERS

    return ", ".join(sorted(UPSAMPLERS))


def _network_name(target: str, upsample: str | None = None) -> str:
    from unet.models.networks import network_name

    return network_name({"_target_": target, "upsample": upsample})


OmegaConf.register_new_resolver("upsamplers", _upsamplers, replace=True)
OmegaConf.register_new_resolver("network_name", _network_name, replace=True)
