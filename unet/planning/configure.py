"""Planning a composed run config: its ``auto`` keys replaced by the plan's values (:mod:`unet.planning.rules`).

:func:`plan_config` reads the data's fingerprint (cached, :mod:`unet.data.fingerprint`), measures the
training speed here (cached, :mod:`unet.planning.speed`), decides, and writes the values into the
config, so that everything after it (instantiation, ``config.yaml``, checkpoints) sees ordinary
numbers. ``unet-plan`` (and ``unet-train plan_only=true``) print the same plan without training.
"""

from __future__ import annotations

import datetime
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from unet.data.base import SegmentationDataModule
from unet.data.fingerprint import fingerprint
from unet.models.encoders import pretrained_statistics
from unet.models.networks import network_config
from unet.planning.rules import AUTO, PLANNED_KEYS, Plan, PlanInputs, make_plan
from unet.planning.speed import MEMORY_FORMATS, PRECISIONS, StepTiming, machine_name, step_rates
from unet.utils.config import CONFIG_MODULE, override_value, plain_config
from unet.utils.files import write_json
from unet.utils.tables import text_table

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
_ABSENT = object()


def _select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)


def fixed_values(cfg: DictConfig) -> dict[str, Any]:
    """The config's value of every plannable key it has (``auto`` for those left to the plan)."""
    values = {}
    for key in PLANNED_KEYS:
        value = _select(cfg, key)
        if value is not _ABSENT:
            values[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return values


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


def time_budget_s(max_time: Any) -> float | None:
    """``trainer.max_time`` in seconds: ``DD:HH:MM:SS``, a ``{days, hours, minutes, seconds}`` map, or ``None``."""
    if max_time is None:
        return None
    if isinstance(max_time, str):
        parts = [float(part) for part in max_time.split(":")]
        if len(parts) != 4:
            raise ValueError(f"trainer.max_time={max_time!r}: expected DD:HH:MM:SS")
        days, hours, minutes, seconds = parts
        return datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    if isinstance(max_time, dict | DictConfig):
        return datetime.timedelta(**{k: float(v) for k, v in dict(max_time).items()}).total_seconds()
    raise ValueError(
        f"trainer.max_time={max_time!r}: expected DD:HH:MM:SS or a map of days/hours/minutes/seconds"
    )


def planned_device(accelerator: Any) -> str:
    """``cuda`` when the trainer will use a GPU here, else ``cpu``."""
    if str(accelerator) in ("cpu",) or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def augment_preset(kind: str) -> DictConfig:
    """The ``augment`` node of ``configs/data/augment/<kind>.yaml``."""
    path = resources.files(CONFIG_MODULE).joinpath("data", "augment", f"{kind}.yaml")
    try:
        return OmegaConf.create(yaml.safe_load(path.read_text()))["augment"]
    except (FileNotFoundError, KeyError) as error:
        raise ValueError(
            f"augment.kind={kind!r}: no augmentation preset configs/data/augment/{kind}.yaml"
        ) from error


def _options(value: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
    """The choices to time for a config value: all of them for ``auto``, else the one set (if timeable)."""
    return choices if value == AUTO or value not in choices else (value,)


def plan_config(cfg: DictConfig) -> Plan | None:
    """Decide ``cfg``'s ``auto`` keys and write the values into it; ``None`` (and ``cfg`` untouched) if none is.

    Reads ``cfg.data`` (fingerprint, cached in ``paths.cache_dir``), ``cfg.model`` (the network timed),
    ``cfg.trainer`` (device and budget).
    """
    if not needs_plan(cfg):
        return None
    cache_dir = _select(cfg, "paths.cache_dir")
    cache_dir = None if cache_dir is _ABSENT else cache_dir
    datamodule = reading_datamodule(cfg.data)
    data_print = fingerprint(datamodule, cache_dir)
    val_images = len(datamodule.dataset("val")) if datamodule.has_split("val") else 0
    device = planned_device(_select(cfg, "trainer.accelerator"))
    transforms_auto = _select(cfg, "augment.transforms") == AUTO
    inputs = PlanInputs(
        fingerprint=data_print,
        val_images=val_images,
        device=device,
        budget_s=time_budget_s(_select(cfg, "trainer.max_time")),
        has_crop=transforms_auto or _select(cfg, "augment.crop") is not _ABSENT,
        cpu_count=os.cpu_count() or 1,
        pretrained=pretrained_normalisation(cfg, datamodule.in_channels),
    )
    net = plain_config(cfg.model.net)

    def rates(net_values: dict[str, Any], batch: int, patch: int) -> dict[str, float]:
        timed = {**net, **{k: v for k, v in net_values.items() if k in net}}
        timed = {k: v for k, v in timed.items() if v != AUTO}
        config = network_config(
            timed, datamodule.in_channels, datamodule.num_classes, cfg.model.get("upsample"),
            cfg.model.get("upsample_options"), encoder=cfg.model.get("encoder"),
        )  # fmt: skip
        timing = StepTiming(
            config, batch, patch, datamodule.num_classes, device,
            precisions=_options(_select(cfg, "trainer.precision"), PRECISIONS),
            layouts=_options(_select(cfg, "model.memory_format"), MEMORY_FORMATS),
        )  # fmt: skip
        measured, cached = step_rates(timing, cache_dir)
        log.info("training speed %s (%s)", "from the cache" if cached else "measured", machine_name(device))
        return measured

    fixed = fixed_values(cfg)
    if transforms_auto:
        fixed.setdefault("augment.kind", AUTO)
    else:
        fixed.pop("augment.kind", None)  # only the auto preset has a kind to plan
    plan = make_plan(inputs, fixed, rates)
    plan.facts.update(
        device=machine_name(device),
        budget_s=inputs.budget_s,
        max_epochs=plan.value("trainer.max_epochs"),
        training_images=data_print.images,
        validation_images=val_images,
        image_size=[data_print.height[1], data_print.width[1]],
    )
    apply_plan(cfg, plan)
    return plan


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


def apply_plan(cfg: DictConfig, plan: Plan) -> None:
    """Write the plan's values into ``cfg`` (the augmentation preset first, then every key)."""
    with open_dict(cfg):
        kind = plan.value("augment.kind")
        if _select(cfg, "augment.transforms") == AUTO:
            crop = _select(cfg, "augment.crop")
            cfg.augment = augment_preset(kind)
            if crop is not _ABSENT and "crop" in cfg.augment:
                cfg.augment.crop = crop
        for key, value in plan.planned().items():
            if key != "augment.kind":
                OmegaConf.update(cfg, key, value, merge=False)


def plan_overrides(plan: Plan) -> list[str]:
    """The plan's values as ``unet-train`` overrides (how ``unet-compare`` gives every run the same plan)."""
    overrides = []
    for key, value in plan.planned().items():
        if key == "augment.kind":
            overrides.append(f"data/augment={value}")
        else:
            overrides.append(f"{key}={override_value(value)}")
    return overrides


def write_plan(plan: Plan, output_dir: str | Path) -> Path:
    """``plan.json`` in the run directory."""
    path = Path(output_dir) / PLAN_FILE
    write_json(path, plan.to_dict())
    return path


def format_plan(plan: Plan) -> str:
    """The plan as a table (key, value, whether planned, why) under a line of the numbers behind it."""
    facts = plan.facts
    budget = facts.get("budget_s")
    head = (
        f"training plan on {facts.get('device')}: "
        + (f"budget {budget:g} s" if budget else f"budget {facts.get('max_epochs')} epochs")
        + f", {facts.get('training_images')} training images of ~{facts.get('image_size')}, "
        f"{facts.get('validation_images')} validation images; ~{facts.get('estimated_steps')} steps of "
        f"{facts.get('step_s')} s, validation ~{facts.get('validation_s')} s every "
        f"{facts.get('steps_between_validations')} steps"
    )
    records = [
        {
            "key": c.key,
            "value": override_value(c.value),
            "from": "plan" if c.planned else "config",
            "reason": c.reason,
        }
        for c in plan.choices.values()
    ]
    columns = [
        ("key", "key", "{}"),
        ("value", "value", "{}"),
        ("from", "from", "{}"),
        ("why", "reason", "{}"),
    ]
    return "\n".join([head, text_table(columns, records, rule=True, left=(0, 1, 2, 3))])
