"""What training does with checkpoints beyond loading a network: the Lightning module rebuilt for scoring,
the run's stored data config, and the checks before resuming (the network, the settings changed since)
or scoring on other data.

Reading the file itself (intact, tensors only, finite, trusted targets, older formats upgraded) is
:mod:`unet.models.loading`'s, which export and prediction use without Lightning.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unet.models.loading import load_checkpoint, load_weights_into
from unet.models.networks import resolve_target
from unet.models.safe_loading import CheckpointError, check_trusted
from unet.training.module import SegmentationModule
from unet.utils.config import flatten
from unet.utils.errors import ConfigError

RUN_CONFIG_KEY = "unet_run_config"


def check_fits_data(hparams: Any, datamodule: Any, ckpt_path: str | Path) -> None:
    """A checkpoint can only score or continue on data with its number of classes and input channels."""
    problems = [
        f"{hparams.get(key)} {what} in the checkpoint, {getattr(datamodule, key)} in the data"
        for key, what in (("num_classes", "classes"), ("in_channels", "input channels"))
        if hparams.get(key) != getattr(datamodule, key)
    ]
    if problems:
        raise CheckpointError(f"checkpoint {ckpt_path} does not fit the data: " + "; ".join(problems))


def module_from_checkpoint(
    path: str | Path, ignore_index: int | None | str = "checkpoint"
) -> tuple[SegmentationModule, dict[str, Any]]:
    """Rebuild the trained Lightning module (its loss and metrics too, to score with Lightning's test loop)
    from the checkpoint alone; returns it (in eval mode) and the checkpoint. ``ignore_index``: the label
    the scores leave out, when the data scored has another than the training data (``"checkpoint"``: its own)."""
    checkpoint = load_checkpoint(path)  # intact, safe, finite, upgraded; its targets trusted
    hparams = dict(checkpoint["hyper_parameters"])
    if ignore_index != "checkpoint":
        hparams["ignore_index"] = ignore_index
    # The state dict holds the trained weights: the pretrained ones the run started from are not read.
    module = SegmentationModule(**{**hparams, "encoder_weights": None})
    load_weights_into(module, checkpoint["state_dict"], path)
    return module.eval(), checkpoint


def training_data_config(checkpoint: dict[str, Any], path: str | Path) -> DictConfig:
    """The data config of the run that wrote ``checkpoint``, to rebuild its datamodule.

    Like the hyper-parameters, it may only name objects of trusted packages.
    """
    stored = checkpoint.get(RUN_CONFIG_KEY, {}).get("data")
    if stored is None:
        raise CheckpointError(f"{path} does not record its training data; name the data with data=<name>")
    check_trusted(stored, path)
    return OmegaConf.create(stored)


# Network options that change how a network is run, not its weights or what it computes.
RUN_ONLY_NET_OPTIONS = ("checkpoint_encoder", "encoder_weights")


def _constructor_defaults(target: Any) -> dict[str, Any]:
    """The keyword defaults of a network's ``_target_``: what an option a config leaves out means."""
    try:
        signature = inspect.signature(resolve_target(target))
    except (ValueError, TypeError):
        return {}
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def architecture_options(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The options that decide a network's weights and computation, by the config key that sets them."""
    net = _plain(dict(hparams.get("net") or {}))
    options = {**_constructor_defaults(net.get("_target_")), **net} if net.get("_target_") else net
    # The encoder is chosen by model.encoder; where that is unset (older runs), the network's own default.
    network_default = options.pop("encoder", None)
    encoder = hparams.get("encoder") or network_default
    flat = {f"model.net.{key}": value for key, value in options.items() if key not in RUN_ONLY_NET_OPTIONS}
    if encoder is not None:
        flat["model.encoder"] = encoder
    flat["model.upsample"] = hparams.get("upsample")
    for key, value in _plain(dict(hparams.get("upsample_options") or {})).items():
        flat[f"model.upsample_options.{key}"] = value
    flat["data.train_scale"] = float(hparams.get("input_scale", 1.0) or 1.0)
    return flat


def check_same_network(
    checkpoint: Mapping[str, Any], module: SegmentationModule, ckpt_path: str | Path
) -> None:
    """Before resuming, refuse a config whose network differs from the checkpoint's, naming each option.

    Otherwise Lightning stops deep in ``load_state_dict`` with a list of tensor names, or (an option
    that has no weights of its own, e.g. the activation) resumes silently with another network.
    """
    stored = architecture_options(checkpoint["hyper_parameters"])
    configured = architecture_options(module.hparams)
    absent = "absent"
    differences = [
        f"{key}: {stored.get(key, absent)} in the checkpoint, {configured.get(key, absent)} in the config"
        for key in sorted(stored.keys() | configured.keys())
        if stored.get(key, absent) != configured.get(key, absent)
    ]
    if not differences:
        expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
        found = {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}
        differences = [
            f"{key}: {found.get(key, absent)} in the checkpoint, {expected.get(key, absent)} in the config"
            for key in sorted(expected.keys() | found.keys())
            if found.get(key) != expected.get(key)
        ][:5]
    if differences:
        raise CheckpointError(
            f"checkpoint {ckpt_path} holds another network than the config: {'; '.join(differences)}; "
            "resume with the checkpoint's settings (its run's config.yaml)"
        )


# Settings a run may change when it resumes (``resume_changes=apply``): the optimizer, the schedule, the
# loss and the run's length. The network and the data's classes and channels may not (checked above).
CHANGEABLE_ON_RESUME = (
    "model.optimizer.",
    "model.scheduler.",
    "model.loss.",
    "model.encoder_lr_ratio",
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.max_time",
)
RESUME_POLICIES = ("refuse", "apply")


def changed_on_resume(checkpoint: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (the checkpoint's value, the config's)}`` of each changeable setting that differs; empty for
    a checkpoint that does not record its run's config."""
    stored = checkpoint.get(RUN_CONFIG_KEY)
    if not stored:
        return {}
    before, after, absent = flatten(stored), flatten(config), "absent"
    keys = sorted(key for key in before.keys() | after.keys() if key.startswith(CHANGEABLE_ON_RESUME))
    return {
        key: (before.get(key, absent), after.get(key, absent))
        for key in keys
        if before.get(key, absent) != after.get(key, absent)
    }


def check_resume_changes(
    checkpoint: Mapping[str, Any], config: Mapping[str, Any], ckpt_path: str | Path, policy: str
) -> dict[str, tuple[Any, Any]]:
    """The settings changed since the checkpoint, refused unless ``policy`` (``resume_changes``) is ``apply``.

    Lightning would otherwise resume with the checkpoint's optimizer settings and schedule while the run's
    ``config.yaml`` claimed the config's (see :class:`unet.training.callbacks.ConfiguredOptimization`).
    """
    if policy not in RESUME_POLICIES:
        raise ConfigError(f"resume_changes: expected one of {', '.join(RESUME_POLICIES)}, got {policy!r}")
    changes = changed_on_resume(checkpoint, config)
    if changes and policy == "refuse":
        listed = "; ".join(
            f"{key}: {old} in the checkpoint, {new} in the config" for key, (old, new) in changes.items()
        )
        raise ConfigError(
            f"checkpoint {ckpt_path} was trained with other settings than the config: {listed}; resume with the "
            "checkpoint's (its run's config.yaml), or add resume_changes=apply to train on with the config's "
            f"(the learning-rate schedule then starts again at the checkpoint's step {checkpoint.get('global_step')})"
        )
    return changes
