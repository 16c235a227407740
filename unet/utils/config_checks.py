"""The checks every command makes on its composed config before it starts, run by the Hydra apps and
the Python API alike: what would otherwise fail late, or deep inside a library with a less clear message.

The cheap ones come first and load neither torch nor Lightning, so a command refuses a missing data
root or a typo at once; torch loads only to ask for CUDA when a key names a CUDA device.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from unet.utils.budget import MAX_TIME_KEY, max_time_seconds
from unet.utils.config import check_override_types
from unet.utils.errors import ConfigError, EnvironmentMismatchError, InputNotFoundError
from unet.utils.limits import (
    ClassCountMemory,
    ClassCountTime,
    check_classes_fit,
    check_num_classes,
    machine_rate,
)
from unet.utils.source_reading import registered_names

# The smallest training step a config may plan, for the memory a class count needs at least: one crop
# of this many pixels a side (the planner's smallest crop) unless the config types the batch and crop.
SMALLEST_SIDE = 16

log = logging.getLogger(__name__)
# Config keys that name a device, and the value to use instead when CUDA is missing.
DEVICE_KEYS = {"device": "cpu", "trainer.accelerator": "cpu"}
# Past this many classes (more than an 8-bit mask holds), a command says what they cost in memory and
# time before it starts; up to it, they are a small part of a step and the machine is not timed for them.
MANY_CLASSES = 256
# Where the upsampling methods are registered (unet.models.UPSAMPLERS), and by which decorator.
UPSAMPLER_PACKAGE = "unet.models.upsamplers"
UPSAMPLER_DECORATOR = "register_upsampler"


def check_before_running(cfg: DictConfig) -> None:
    """Refuse, before any work, what the config alone shows (:func:`check_before_writing`) and a CUDA
    device this machine lacks."""
    check_before_writing(cfg)
    check_devices(cfg)
    announce_class_costs(cfg)


def check_before_writing(cfg: DictConfig) -> None:
    """The checks of the config alone, which the commands make before Hydra writes their run directory
    and before torch loads: a data root that does not exist, an override's value of the wrong type (when
    Hydra records the overrides), unet-compare's methods that are not registered, and a class count that
    is a typo or would not fit in memory."""
    check_inputs_exist(cfg)
    overrides = _command_line_overrides(cfg)
    if overrides is not None:
        check_override_types(cfg, overrides)
    check_compared_methods(cfg)
    check_config_sizes(cfg)


def _command_line_overrides(cfg: DictConfig) -> list[str] | None:
    """The overrides Hydra composed ``cfg`` with: its own ``hydra`` node's (a Hydra callback's config),
    else the running job's; ``None`` outside a Hydra app. Unresolved: a value may be an interpolation."""
    from hydra.core.hydra_config import HydraConfig

    if "hydra" in cfg:
        return OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    if HydraConfig.initialized():
        return OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    return None


def check_compared_methods(cfg: DictConfig) -> None:
    """Refuse unet-compare's ``methods`` naming neither a registered upsampling method nor a variant, from
    the registry's source (its modules import torch), and an empty list of methods or seeds (it would
    write an empty report)."""
    methods = _select(cfg, "methods")
    for key, example in (("methods", "methods=[nearest,maxunpool]"), ("seeds", "seeds=[0,1,2]")):
        value = _select(cfg, key)
        if OmegaConf.is_list(value) and len(value) == 0:
            raise ConfigError(
                f"{key}: an empty list compares nothing; leave it out or name some, e.g. {example}"
            )
    if OmegaConf.is_list(methods):
        variants = _select(cfg, "variants")
        check_method_names(
            list(methods),
            list(variants) if OmegaConf.is_dict(variants) else [],
            registered_names(UPSAMPLER_PACKAGE, UPSAMPLER_DECORATOR),
        )


def check_method_names(
    methods: Sequence[str], variants: Collection[str], registered: Collection[str]
) -> None:
    """Refuse compared ``methods`` that are neither ``registered`` upsampling methods nor ``variants``."""
    unknown = [name for name in methods if name not in registered and name not in variants]
    if unknown:
        raise ConfigError(
            f"unknown upsampling method(s) {unknown}; valid names: {', '.join(sorted(registered))}"
            + (f"; variants: {', '.join(sorted(variants))}" if variants else "")
        )


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
    fit this machine's memory, or whose first step would not fit the run's ``trainer.max_time``."""
    budget_s = max_time_seconds(_select(cfg, MAX_TIME_KEY))
    for key, memory, seconds in class_count_costs(cfg):
        check_classes_fit(memory, key, seconds, budget_s=budget_s)


def class_count_costs(cfg: DictConfig) -> list[tuple[str, ClassCountMemory, ClassCountTime | None]]:
    """The memory and time the config's class count costs (``data.num_classes``, or a command's own
    ``num_classes``) at the typed batch and crop, else the smallest step; a typo refused first. The time
    only past :data:`MANY_CLASSES` (timing the machine takes a moment every command would wait)."""
    costs = []
    for key in ("data.num_classes", "num_classes"):
        value = _select(cfg, key)
        if isinstance(value, int):
            check_num_classes(value, key)
            height, width = _typed_step_size(cfg)
            batch = _select(cfg, "data.batch_size")
            batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else 1
            seconds = (
                ClassCountTime(value, batch, height, width, machine_rate()) if value > MANY_CLASSES else None
            )
            costs.append((key, ClassCountMemory(value, batch, height, width), seconds))
    return costs


def announce_class_costs(cfg: DictConfig) -> None:
    """Say what a large class count costs before the command's work starts (loading the libraries, reading
    the data, timing a step can each take a while at such a count), so no minute passes silently."""
    for key, memory, seconds in class_count_costs(cfg):
        if seconds is not None:
            log.warning(
                "%s=%s: a training step needs at least %s, and %s; loading the libraries and reading the "
                "data next",
                key, f"{memory.num_classes:,}", memory.describe(), seconds.describe(),
            )  # fmt: skip


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
