"""Load training checkpoints safely: tensors and builtins only, never code from the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import unet
from unet.models.networks import check_trusted_targets
from unet.training.module import CHECKPOINT_FORMAT, FORMAT_KEY, VERSION_KEY, SegmentationModule

RUN_CONFIG_KEY = "unet_run_config"
# The U-Net options format 1 kept beside the module's own (format 2 keeps them under ``net``).
FORMAT_1_NET_KEYS = (
    "depth", "base_channels", "fuse", "norm", "activation", "dropout", "decoder_width", "checkpoint_encoder",
)  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint that is missing, unsafe to unpickle or not one of this framework's."""


def load_safely(path: str | Path) -> Any:
    """Read a file written by ``torch.save`` with ``torch.load(weights_only=True)``.

    A file that needs arbitrary code to unpickle is refused rather than executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects that only arbitrary code could rebuild "
            f"(weights_only=True load failed: {str(error).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    return checkpoint


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint of this framework (weights and hyper-parameters), read by :func:`load_safely`.

    Hyper-parameters of an older format are upgraded to the current one; a checkpoint of a newer
    format than this version reads is refused, naming both versions.
    """
    checkpoint = load_safely(path)
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise CheckpointError(f"{path} is not a unet training checkpoint (no state_dict/hyper_parameters)")
    written_format = checkpoint.get(FORMAT_KEY, 1)
    if written_format > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} was written by unet {checkpoint.get(VERSION_KEY, '?')} (checkpoint format {written_format}); "
            f"unet {unet.__version__} reads formats up to {CHECKPOINT_FORMAT}: upgrade unet to load it"
        )
    if written_format == 1 and "net" not in checkpoint["hyper_parameters"]:
        checkpoint["hyper_parameters"] = upgrade_format_1(checkpoint["hyper_parameters"])
    return checkpoint


def upgrade_format_1(hparams: dict[str, Any]) -> dict[str, Any]:
    """unet 0.1's hyper-parameters (U-Net options beside the module's, peers as ``network``) in format 2."""
    hparams = dict(hparams)
    network = hparams.pop("network", None)
    unet_options = {key: hparams.pop(key) for key in FORMAT_1_NET_KEYS if key in hparams}
    if network:
        hparams.update(net=dict(network), upsample=None, upsample_options={})
    else:
        hparams["net"] = {"_target_": "unet.models.UNet", **unet_options}
    return hparams


def check_fits_data(hparams: Any, datamodule: Any, ckpt_path: str | Path) -> None:
    """A checkpoint can only score or continue on data with its number of classes and input channels."""
    problems = [
        f"{hparams.get(key)} {what} in the checkpoint, {getattr(datamodule, key)} in the data"
        for key, what in (("num_classes", "classes"), ("in_channels", "input channels"))
        if hparams.get(key) != getattr(datamodule, key)
    ]
    if problems:
        raise CheckpointError(f"checkpoint {ckpt_path} does not fit the data: " + "; ".join(problems))


def module_from_checkpoint(path: str | Path) -> tuple[SegmentationModule, dict[str, Any]]:
    """Rebuild the trained module from the checkpoint alone; returns it (in eval mode) and the checkpoint."""
    checkpoint = load_checkpoint(path)
    check_trusted_targets(checkpoint["hyper_parameters"])
    module = SegmentationModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval(), checkpoint


def training_data_config(checkpoint: dict[str, Any], path: str | Path) -> DictConfig:
    """The data config of the run that wrote ``checkpoint``, to rebuild its datamodule.

    Like the hyper-parameters, it may only name objects of trusted packages.
    """
    stored = checkpoint.get(RUN_CONFIG_KEY, {}).get("data")
    if stored is None:
        raise CheckpointError(f"{path} does not record its training data; name the data with data=<name>")
    check_trusted_targets(stored)
    return OmegaConf.create(stored)
