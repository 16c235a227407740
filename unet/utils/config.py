"""Configs as plain data: resolved builtins for files and loggers, and in-process composition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

# The package the Hydra configs ship in (``configs/`` in a source checkout).
CONFIG_MODULE = "unet.configs"


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as builtins (what gets stored in checkpoints and written to disk)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"upsample": "x"}}`` -> ``{"model.upsample": "x"}``; lists become strings."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str) or value is None:
            flat[name] = "null" if value is None else value
        else:
            flat[name] = str(value)
    return flat


def compose_config(
    config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False
) -> DictConfig:
    """``configs/<config_name>.yaml`` composed with command-line style ``overrides``, outside a Hydra app."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
