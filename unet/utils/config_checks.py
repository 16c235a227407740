"""The checks every command makes on its composed config before it starts, run by the Hydra apps and
the Python API alike: what would otherwise fail late, or deep inside a library with a less clear message.

The cheap ones come first and load neither torch nor Lightning, so a command refuses a missing data
root or a typo at once; torch loads only to ask for CUDA when a key names a CUDA device.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from unet.utils.config import check_override_types
from unet.utils.errors import EnvironmentMismatchError, InputNotFoundError
from unet.utils.limits import ClassCountMemory, check_classes_fit, check_num_classes

# The smallest training step a config may plan, for the memory a class count needs at least: one crop
# of this many pixels a side (the planner's smallest crop) unless the config types the batch and crop.
SMALLEST_SIDE = 16
# Config keys that name a device, and the value to use instead when CUDA is missing.
DEVICE_KEYS = {"device": "cpu", "trainer.accelerator": "cpu"}


def check_before_running(cfg: DictConfig) -> None:
    """Refuse, before any work, what the config alone shows (:func:`check_before_writing`), an override's
    value of the wrong type (when Hydra's job records the overrides) and a CUDA device this machine lacks."""
    from hydra.core.hydra_config import HydraConfig

    check_before_writing(cfg)
    if HydraConfig.initialized():
        # unresolved: an override's value may itself be an interpolation (x=${y})
        overrides = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
        check_override_types(cfg, overrides)
    check_devices(cfg)


def check_before_writing(cfg: DictConfig) -> None:
    """The checks of the config alone, which the commands make before Hydra writes their run directory:
    a data root that does not exist, and a class count that is a typo or would not fit in memory."""
    check_inputs_exist(cfg)
    check_config_sizes(cfg)


def check_inputs_exist(cfg: DictConfig) -> None:
    """Refuse a data root that does not exist (unless ``data.download`` will fetch it) from the composed
    config, before the data module, and the libraries it needs, are loaded."""
    root = _select(cfg, "data.root")
    if not isinstance(root, str) or _select(cfg, "data.download"):
        return
    if not Path(root).expanduser().exists():
        raise InputNotFoundError(
            f"data.root={root}: no such directory; point data.root at the folder of your data"
        )


def check_devices(cfg: DictConfig) -> None:
    """Refuse a CUDA device on a machine without one, naming the key and what to use instead.

    Lightning would raise its MisconfigurationException (a traceback) and torch a RuntimeError deep inside.
    """
    for key, instead in DEVICE_KEYS.items():
        value = OmegaConf.select(
            cfg, key, default=None, throw_on_missing=False, throw_on_resolution_failure=False
        )
        if isinstance(value, str) and (value in ("gpu", "cuda") or value.startswith("cuda:")):
            import torch

            if torch.cuda.is_available():
                return
            raise EnvironmentMismatchError(
                f"{key}={value}: no CUDA device is available on this machine (torch.cuda.is_available() is "
                f"false); use {key}={instead}"
            )


def check_config_sizes(cfg: DictConfig) -> None:
    """Refuse a typo'd class count before the data are read: per-class statistics of the data
    fingerprint, confusion matrices and the network would take gigabytes first; and one whose
    confusion matrices and logits (at the typed batch and crop, else the smallest step) would not
    fit this machine's memory."""
    for key in ("data.num_classes", "num_classes"):
        value = _select(cfg, key)
        if isinstance(value, int):
            check_num_classes(value, key)
            height, width = _typed_step_size(cfg)
            batch = _select(cfg, "data.batch_size")
            batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else 1
            check_classes_fit(ClassCountMemory(value, batch, height, width), key)


def check_paths_exist(cfg: DictConfig, *keys: str) -> None:
    """Refuse a file or folder that ``keys`` name and that does not exist, before a command loads the
    libraries that would read it (a glob pattern is left to the command that expands it). A key left
    ``???`` is refused as missing first, whichever key comes first."""
    values = {key: OmegaConf.select(cfg, key, default=None, throw_on_missing=True) for key in keys}
    for key, value in values.items():
        if (
            isinstance(value, str)
            and not any(c in value for c in "*?[")
            and not Path(value).expanduser().exists()
        ):
            raise InputNotFoundError(f"{key}={value}: no such file or directory")


def _typed_step_size(cfg: DictConfig) -> tuple[int, int]:
    """A training crop's (height, width) as the config types it (the crop, else the image size), else the
    smallest the planner chooses."""
    for key in ("augment.crop", "data.image_size"):
        value = _select(cfg, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, value
        if OmegaConf.is_list(value) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return int(value[0]), int(value[1])
    return SMALLEST_SIDE, SMALLEST_SIDE


def _select(cfg: DictConfig, key: str) -> object:
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False, throw_on_resolution_failure=False)
