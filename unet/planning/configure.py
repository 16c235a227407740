"""Planning a composed run config: its ``auto`` keys decided (:mod:`unet.planning.rules`), then the
config composed again with the plan's overrides.

:func:`plan_config` reads the data's fingerprint (cached, :mod:`unet.data.fingerprint`), measures the
training speed here (cached, :mod:`unet.planning.speed`) and decides; :func:`planned_config` composes
the config again with the plan's overrides after its own (:meth:`~unet.planning.plan.Plan.overrides`),
so that everything after it (instantiation, ``config.yaml``, checkpoints) sees ordinary numbers and
Hydra itself loads the planned augmentation preset. ``unet-plan`` prints the same plan without training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.data.base import SegmentationDataModule
from unet.data.fingerprint import fingerprint
from unet.models.encoders import pretrained_statistics
from unet.models.encoders.base import level_factors
from unet.models.networks import network_config
from unet.planning.plan import AUGMENT_KIND, AUTO, Plan
from unet.planning.rules import PLANNED_KEYS, PlanInputs, RateFunction, ValidationTimer, make_plan
from unet.planning.speed import (
    MEMORY_FORMATS,
    PRECISIONS,
    StepTiming,
    ValidationTiming,
    machine_name,
    step_rates,
    validation_seconds,
)
from unet.utils.budget import max_time_seconds
from unet.utils.config import compose_again, flatten, plain_config
from unet.utils.config_checks import MANY_CLASSES
from unet.utils.limits import ClassCountMemory, ClassCountTime, check_classes_fit, machine_rate

log = logging.getLogger(__name__)

_ABSENT = object()


def _select(cfg: DictConfig, key: str, default: Any = _ABSENT) -> Any:
    return OmegaConf.select(cfg, key, default=default, throw_on_resolution_failure=False)


def fixed_values(cfg: DictConfig) -> dict[str, Any]:
    """The config's value of every plannable key it has (``auto`` for those left to the plan)."""
    values = {}
    for key in PLANNED_KEYS:
        value = _select(cfg, key)
        if value is not _ABSENT:
            values[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return values


def planned_scale(cfg: DictConfig) -> int | list[int]:
    """``model.net.scale`` (2 where absent), checked: the depth planned for a patch depends on it."""
    scale = _select(cfg, "model.net.scale", 2)
    scale = OmegaConf.to_container(scale, resolve=True) if OmegaConf.is_config(scale) else scale
    level_factors(scale, len(scale) if isinstance(scale, list) else 1)
    return scale


def needs_plan(cfg: DictConfig) -> bool:
    """Whether any key of ``cfg`` is ``auto`` (or the augmentation preset is)."""
    return AUTO in fixed_values(cfg).values() or _select(cfg, "augment.transforms") == AUTO


def without_plan(node: DictConfig, **values: Any) -> DictConfig:
    """A copy of ``node`` whose ``auto`` keys take ``values``, or else are left out (the class defaults):
    for building a part of a config outside a training run (evaluation, reading the data)."""
    plain = OmegaConf.to_container(node, resolve=True)
    for key, value in list(plain.items()):
        if value == AUTO:
            if key in values:
                plain[key] = values[key]
            else:
                del plain[key]
    return OmegaConf.create(plain)


def reading_datamodule(data_cfg: DictConfig, **values: Any) -> SegmentationDataModule:
    """The datamodule of ``data_cfg`` for reading its samples once, without training augmentation: its
    ``auto`` keys at ``values`` (e.g. a checkpoint's ``mean`` and ``std``), or else at the class defaults.
    No in-memory cache: one reading (or only counting, as the plan does for validation images) should
    not decode every file up front and hold it."""
    data = without_plan(data_cfg, **values)
    data.train_transforms = None
    if "cache" in data:
        data.cache = False
    return instantiate(data)


def planned_device(accelerator: Any) -> str:
    """``cuda`` when the trainer will use a GPU here, else ``cpu``."""
    if str(accelerator) in ("cpu",) or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def _options(value: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
    """The choices to time for a config value: all of them for ``auto``, else the one set (if timeable)."""
    return choices if value == AUTO or value not in choices else (value,)


def plan_config(cfg: DictConfig) -> Plan | None:
    """The plan of ``cfg``'s ``auto`` keys; ``None`` if none is. ``cfg`` is left as it is (see
    :func:`planned_config` for the config that trains with the plan).

    Reads ``cfg.data`` (fingerprint, cached in ``paths.cache_dir``), ``cfg.model`` (the network timed),
    ``cfg.trainer`` (device and budget).
    """
    if not needs_plan(cfg):
        return None
    budget_s = max_time_seconds(_select(cfg, "trainer.max_time", None))
    cache_dir = _select(cfg, "paths.cache_dir", None)
    datamodule = reading_datamodule(cfg.data)
    data_print = fingerprint(datamodule, cache_dir)
    val_images = len(datamodule.dataset("val")) if datamodule.has_split("val") else 0
    device = planned_device(_select(cfg, "trainer.accelerator"))
    transforms_auto = _select(cfg, "augment.transforms") == AUTO
    inputs = PlanInputs(
        fingerprint=data_print,
        val_images=val_images,
        device=device,
        budget_s=budget_s,
        has_crop=transforms_auto or _select(cfg, "augment.crop") is not _ABSENT,
        cpu_count=os.cpu_count() or 1,
        pretrained=pretrained_normalisation(cfg, datamodule.in_channels),
        scale=planned_scale(cfg),
    )
    fixed = fixed_values(cfg)
    if transforms_auto:
        fixed.setdefault(AUGMENT_KIND, AUTO)
    else:
        fixed.pop(AUGMENT_KIND, None)  # only the auto preset has a kind to plan
    image = (round(data_print.height[1]), round(data_print.width[1]))
    plan = make_plan(
        inputs,
        fixed,
        _measured_rates(cfg, datamodule, device, cache_dir),
        _validation_timer(cfg, datamodule, device, cache_dir, image) if val_images else None,
    )
    plan.facts.update(
        device=machine_name(device),
        budget_s=inputs.budget_s,
        max_epochs=plan.value("trainer.max_epochs"),
        training_images=data_print.images,
        validation_images=val_images,
        image_size=[data_print.height[1], data_print.width[1]],
    )
    return plan


def _timed_network(
    cfg: DictConfig,
    datamodule: SegmentationDataModule,
    net_values: Mapping[str, Any],
    input_scale: float = 1.0,
) -> dict[str, Any]:
    """``cfg``'s network config with the planned values it is given (those it has), as the run builds it."""
    net = plain_config(cfg.model.net)
    timed = {**net, **{k: v for k, v in net_values.items() if k in net}}
    timed = {k: v for k, v in timed.items() if v != AUTO}
    return network_config(
        timed, datamodule.in_channels, datamodule.num_classes, cfg.model.get("upsample"),
        cfg.model.get("upsample_options"), input_scale=input_scale, encoder=cfg.model.get("encoder"),
    )  # fmt: skip


def _measured_rates(
    cfg: DictConfig, datamodule: SegmentationDataModule, device: str, cache_dir: str | None
) -> RateFunction:
    """The planner's :data:`~unet.planning.rules.RateFunction`: ``cfg``'s network (with the planned
    values it is given) timed here, cached in ``cache_dir``."""

    def rates(net_values: Mapping[str, Any], batch: int, patch: int) -> dict[str, float]:
        config = _timed_network(cfg, datamodule, net_values)
        timing = StepTiming(
            config, batch, patch, datamodule.num_classes, device,
            precisions=_options(_select(cfg, "trainer.precision"), PRECISIONS),
            layouts=_options(_select(cfg, "model.memory_format"), MEMORY_FORMATS),
        )  # fmt: skip
        check_step_fits(datamodule.num_classes, batch, patch)
        measured, cached = step_rates(timing, cache_dir)
        log.info("training speed %s (%s)", "from the cache" if cached else "measured", machine_name(device))
        return measured

    return rates


# A validation image larger than this is timed at this many pixels (same aspect), its time scaled up.
MAX_TIMED_VALIDATION_PIXELS = 1024 * 1024


def _validation_timer(
    cfg: DictConfig,
    datamodule: SegmentationDataModule,
    device: str,
    cache_dir: str | None,
    image: tuple[int, int],
) -> ValidationTimer:
    """The planner's :data:`~unet.planning.rules.ValidationTimer`: one validation image of ``image``
    ``(height, width)`` predicted whole by ``cfg``'s network at the planned scale, timed here, cached."""

    def seconds(net_values: Mapping[str, Any], scale: float, precision: str, layout: str) -> float:
        shrink = min(1.0, (MAX_TIMED_VALIDATION_PIXELS / (image[0] * image[1])) ** 0.5)
        height, width = max(16, round(image[0] * shrink)), max(16, round(image[1] * shrink))
        config = _timed_network(cfg, datamodule, net_values, input_scale=scale)
        timing = ValidationTiming(config, height, width, device, precision, layout)
        measured, cached = validation_seconds(timing, cache_dir)
        log.info("validation speed %s (%s)", "from the cache" if cached else "measured", machine_name(device))
        return measured * image[0] * image[1] / (height * width)

    return seconds


def check_step_fits(num_classes: int, batch: int, patch: int) -> None:
    """Before a step is timed: refuse a class count whose tensors would not fit this machine at the
    timed batch and patch, and say what a large one costs (timing such a step takes a while)."""
    memory = ClassCountMemory(num_classes, batch, patch, patch)
    many = num_classes > MANY_CLASSES
    seconds = ClassCountTime(num_classes, batch, patch, patch, machine_rate()) if many else None
    check_classes_fit(memory, "data.num_classes", seconds)
    if seconds is not None:
        log.warning(
            "%s classes: a training step needs about %s, and %s; timing one",
            f"{num_classes:,}", memory.describe(), seconds.describe(),
        )  # fmt: skip


def planned_config(cfg: DictConfig) -> tuple[DictConfig, Plan | None]:
    """``cfg`` planned: composed again with the plan's overrides after the ones it was composed with (a
    Hydra app's, or :func:`~unet.utils.config.compose_config`'s), and the plan; ``cfg`` itself and
    ``None`` when nothing is ``auto``."""
    plan = plan_config(cfg)
    if plan is None:
        return cfg, None
    planned = compose_again(cfg, plan.overrides(), replacing=plan.replaced_keys())
    changed = unplanned_changes(cfg, planned, plan)
    if changed:
        raise ValueError(
            f"composing the config again with its plan changed {changed}, which the plan does not set: the "
            "config was changed after it was composed (give such values as overrides instead)"
        )
    return planned, plan


def unplanned_changes(cfg: DictConfig, planned: DictConfig, plan: Plan) -> list[str]:
    """The keys whose (unresolved) values differ between ``cfg`` and ``planned`` besides the plan's own:
    its planned keys, and the augmentation preset's node when the plan chose the preset."""
    own = set(plan.planned())

    def unplanned(config: DictConfig) -> dict[str, Any]:
        flat = flatten(OmegaConf.to_container(config, resolve=False))
        return {
            key: value
            for key, value in flat.items()
            if key not in own and not (AUGMENT_KIND in plan.choices and key.startswith("augment."))
        }

    before, after = unplanned(cfg), unplanned(planned)
    return sorted(
        key for key in before.keys() | after.keys() if before.get(key, _ABSENT) != after.get(key, _ABSENT)
    )


def pretrained_normalisation(
    cfg: DictConfig, in_channels: int
) -> tuple[str, tuple[float, ...], tuple[float, ...]] | None:
    """``(what, mean, std)`` the encoder's pretrained weights expect (``model.encoder_weights`` set), else ``None``."""
    encoder, weights = _select(cfg, "model.encoder"), _select(cfg, "model.encoder_weights")
    if encoder in (None, _ABSENT) or weights in (None, _ABSENT):
        return None
    statistics = pretrained_statistics(encoder, in_channels)
    if statistics is None:
        return None
    return f"the {encoder} weights ({weights})", *statistics
