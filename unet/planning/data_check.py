"""Check a data set against the run a config describes, before training: what ``unet-check-data`` runs.

The data layer knows nothing of networks; here the configured network's smallest input and the configured
training augmentation are computed and handed to :func:`unet.data.inspect.check_data`.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.data.base import SegmentationDataModule
from unet.data.inspect import PLANNED, check_data
from unet.models.networks import build_network, min_input_size, network_config
from unet.planning.configure import reading_datamodule
from unet.planning.plan import AUTO


def _has_auto(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_auto(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_auto(v) for v in value)
    return value == AUTO


def _plain(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def network_min_size(cfg: DictConfig, datamodule: SegmentationDataModule) -> int | None:
    """The smallest input side, in data pixels, of the network ``cfg.model.net`` builds for this data.

    ``None`` without a model config, or while the plan sizes the network (``depth: auto`` fits the
    depth to the training patch). Other ``auto`` keys do not change the smallest input and take the
    network's defaults; ``data.train_scale`` (``auto``: 1) scales it to data pixels.
    """
    net = _plain(cfg, "model.net")
    if not isinstance(net, dict) or net.get("depth") == AUTO:
        return None
    net = {key: value for key, value in net.items() if value != AUTO}
    scale = _plain(cfg, "data.train_scale")
    config = network_config(
        net,
        datamodule.in_channels,
        datamodule.num_classes,
        _plain(cfg, "model.upsample"),
        _plain(cfg, "model.upsample_options"),
        input_scale=1.0 if scale in (None, AUTO) else float(scale),
        encoder=_plain(cfg, "model.encoder"),
    )
    return min_input_size(build_network(config))


def training_transforms(cfg: DictConfig) -> list[Any] | str:
    """The configured training augmentation, instantiated (``[]``: none); :data:`PLANNED` when any of it is
    ``auto`` (the plan picks a crop that fits the smallest image)."""
    transforms = _plain(cfg, "data.train_transforms")
    if _has_auto(transforms):
        return PLANNED
    if transforms is None:
        return []
    return [
        instantiate(transform) for transform in (transforms if isinstance(transforms, list) else [transforms])
    ]


def check_data_from_config(cfg: DictConfig) -> dict[str, Any]:
    """:func:`~unet.data.inspect.check_data` of a composed config (``unet-check-data``): the data read
    without augmentation, checked against the configured network's smallest input and the training
    augmentation. ``auto`` batch and epoch sizes are the plan's to choose
    (it fits them to the data), so they are checked as a batch of 1."""
    batch = _plain(cfg, "data.batch_size")
    values = {"batch_size": 1, "epoch_size": batch if isinstance(batch, int) else 1}
    datamodule = reading_datamodule(cfg.data, **values)
    return check_data(
        datamodule,
        cfg.paths.output_dir,
        cfg.paths.cache_dir,
        min_size=network_min_size(cfg, datamodule),
        train_transforms=training_transforms(cfg),
    )
