"""Load a trained model from any file unet writes, as a plain ``nn.Module`` with what it takes to run it.

:func:`load_model` reads a training checkpoint (``.ckpt``: the network rebuilt from its hyper-parameters,
older formats upgraded), plain weights (``unet-export format=weights``: rebuilt from their JSON sidecar),
a TorchScript export (``.pt``) or a ``torch.export`` program (``.pt2``), without Lightning, Hydra or any
training code: what export, prediction and comparison run, and what a user's own script can call. Every
file passes :mod:`unet.models.safe_loading`'s checks first (intact, tensors only, finite, trusted
targets). ONNX files are not modules: onnxruntime runs them (``unet.inference.load_predictor``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import unet
from unet.models.networks import build_network, network_config
from unet.models.safe_loading import (
    PLAIN_WEIGHTS,
    TRAINING_CHECKPOINT,
    CheckpointError,
    check_finite,
    check_trusted,
    inspect_file,
    is_state_dict,
    load_safely,
    wrong_kind,
)
from unet.utils.errors import InputFileError, InputNotFoundError

# The layout of the hyper-parameters a checkpoint holds: 1 (unet 0.1) had the U-Net's options at the
# top level, 2 has them under ``net`` (load_checkpoint upgrades 1). Written by the training module.
CHECKPOINT_FORMAT = 2
FORMAT_KEY = "unet_checkpoint_format"
VERSION_KEY = "unet_version"
# The U-Net options format 1 kept beside the module's own (format 2 keeps them under ``net``).
FORMAT_1_NET_KEYS = (
    "depth", "base_channels", "fuse", "norm", "activation", "dropout", "decoder_width", "checkpoint_encoder",
)  # fmt: skip
# Where the network's weights are in a checkpoint's state dict (the training module's ``net``).
NET_PREFIX = "net."
SIDECAR_SUFFIX = ".json"
# What every export's sidecar records, whatever unet version wrote it (plus ``net``, or unet 0.1's ``unet``).
SIDECAR_KEYS = ("format", "in_channels", "num_classes", "class_names", "mean", "std")


@dataclass(frozen=True)
class LoadedModel:
    """A trained network in eval mode and what running it takes.

    ``network`` maps normalised images ``(B, C, H, W)`` (``(x - mean) / std`` per channel) to logits
    ``(B, K, H, W)``; an export made with ``embed_preprocessing=true`` takes and returns what its
    ``sidecar`` says instead. ``net_config`` rebuilds it (``unet.models.build_network``).
    ``kind`` is ``checkpoint``, ``weights``, ``torchscript`` or ``pt2`` (a ``torch.export`` program: it
    runs as exported and cannot switch modes); ``format_version`` the checkpoint's hyper-parameter
    format as written (``None`` for exports); ``unet_version`` the version that wrote the file, where
    recorded; ``sidecar`` an export's JSON sidecar as written (``None`` for a checkpoint).
    """

    network: nn.Module
    net_config: dict[str, Any]
    in_channels: int
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    ignore_index: int | None
    kind: str
    format_version: int | None = None
    unet_version: str | None = None
    sidecar: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any], path: str | Path) -> LoadedModel:
        """The network of a checkpoint already read by :func:`load_checkpoint`, its ``net.*`` weights loaded."""
        hparams = checkpoint["hyper_parameters"]
        config = network_config_from_hparams(hparams)
        network = build_network(config)
        state = checkpoint["state_dict"]
        load_weights_into(
            network,
            {key.removeprefix(NET_PREFIX): state[key] for key in state if key.startswith(NET_PREFIX)},
            path,
        )
        return cls(
            network=network.eval(),
            net_config=config,
            in_channels=int(hparams["in_channels"]),
            num_classes=int(hparams["num_classes"]),
            class_names=tuple(hparams["class_names"]),
            mean=tuple(float(value) for value in hparams["mean"]),
            std=tuple(float(value) for value in hparams["std"]),
            ignore_index=hparams.get("ignore_index"),
            kind="checkpoint",
            format_version=checkpoint.get(FORMAT_KEY, 1),
            unet_version=checkpoint.get(VERSION_KEY),
        )

    @classmethod
    def from_sidecar(cls, network: nn.Module, sidecar: dict[str, Any], kind: str) -> LoadedModel:
        """An exported network with what its sidecar (checked by :func:`read_sidecar`) records."""
        return cls(
            network=network,
            net_config=sidecar_network_config(sidecar),
            in_channels=int(sidecar["in_channels"]),
            num_classes=int(sidecar["num_classes"]),
            class_names=tuple(sidecar["class_names"]),
            mean=tuple(float(value) for value in sidecar["mean"]),
            std=tuple(float(value) for value in sidecar["std"]),
            ignore_index=sidecar.get("ignore_index"),
            kind=kind,
            unet_version=sidecar.get("versions", {}).get("unet"),
            sidecar=sidecar,
        )


def network_config_from_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The complete network config (:func:`unet.models.networks.network_config`) of the training module's
    hyper-parameters, as a checkpoint stores them."""
    return network_config(
        hparams["net"],
        hparams["in_channels"],
        hparams["num_classes"],
        hparams.get("upsample"),
        hparams.get("upsample_options"),
        hparams.get("input_scale", 1.0),
        hparams.get("encoder"),
    )


def load_weights_into(network: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """``network.load_state_dict(state)`` (strict), refusing weights of another network naming the file."""
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).split("\n", 1)[-1].split())
        raise CheckpointError(
            f"{path} holds weights of another network than the one it names: {detail[:300]}"
        ) from None


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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint of this framework (weights, hyper-parameters, what the run recorded), read by
    :func:`~unet.models.safe_loading.load_safely`.

    Hyper-parameters of an older format are upgraded to the current one; a checkpoint of a newer format
    than this version reads is refused, naming both versions. Hyper-parameters naming untrusted code and
    weights holding NaN or an infinity are refused, naming the target or the tensor.
    """
    checkpoint = load_safely(path)
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        if is_state_dict(checkpoint):
            raise CheckpointError(
                f"{path} holds {PLAIN_WEIGHTS}, not {TRAINING_CHECKPOINT}: it runs with unet-predict and its "
                ".json sidecar"
            )
        raise CheckpointError(f"{path} is not a unet training checkpoint (no state_dict/hyper_parameters)")
    written_format = checkpoint.get(FORMAT_KEY, 1)
    if written_format > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} was written by unet {checkpoint.get(VERSION_KEY, '?')} (checkpoint format {written_format}); "
            f"unet {unet.__version__} reads formats up to {CHECKPOINT_FORMAT}: upgrade unet to load it"
        )
    if written_format == 1 and "net" not in checkpoint["hyper_parameters"]:
        checkpoint["hyper_parameters"] = upgrade_format_1(checkpoint["hyper_parameters"])
    check_trusted(checkpoint["hyper_parameters"], path)
    check_finite(checkpoint["state_dict"], path, " (a run that diverged); use an earlier checkpoint")
    return checkpoint


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A network's plain state dict (``unet-export format=weights``), intact, safe and finite."""
    state = load_safely(path, expected=PLAIN_WEIGHTS)
    if isinstance(state, dict) and "state_dict" in state and "hyper_parameters" in state:
        raise CheckpointError(
            f"{path} is a training checkpoint, not {PLAIN_WEIGHTS}: name it .ckpt (it needs no sidecar)"
        )
    if not is_state_dict(state):
        raise CheckpointError(f"{path} does not hold {PLAIN_WEIGHTS}: expected a dict of named tensors")
    check_finite(state, path)
    return state


def sidecar_path(exported: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the JSON beside every export (``unet.export.metadata``)."""
    exported = Path(exported)
    return exported.with_name(exported.name + SIDECAR_SUFFIX)


def read_sidecar(exported: str | Path) -> dict[str, Any]:
    """The sidecar of an exported file (plain JSON: nothing is unpickled), checked to hold what every
    unet-export sidecar does."""
    path = sidecar_path(exported)
    if not path.is_file():
        raise InputNotFoundError(
            f"{path} not found: an exported model needs its JSON sidecar (written by unet-export)"
        )
    try:
        sidecar = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputFileError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(sidecar, dict):
        raise InputFileError(f"{path} is not a sidecar written by unet-export: expected a JSON object")
    missing = [key for key in SIDECAR_KEYS if key not in sidecar]
    if missing or ("net" not in sidecar and "unet" not in sidecar):
        raise InputFileError(
            f"{path} is not a sidecar written by unet-export: it lacks {', '.join(missing) or 'net'}"
        )
    return sidecar


def sidecar_network_config(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """The network's complete config in a sidecar; unet 0.1's held the U-Net's options as ``unet``."""
    return dict(sidecar["net"]) if "net" in sidecar else {"_target_": "unet.models.UNet", **sidecar["unet"]}


def _read_checkpoint(path: Path) -> LoadedModel:
    return LoadedModel.from_checkpoint(load_checkpoint(path), path)


def _read_torch_export(path: Path) -> LoadedModel:
    """A ``.pt`` from unet-export: plain weights or TorchScript, as its sidecar says."""
    sidecar = read_sidecar(path)
    if sidecar["format"] == "weights":
        config = sidecar_network_config(sidecar)
        check_trusted(config, sidecar_path(path))
        network = build_network(config)
        load_weights_into(network, load_weights(path), path)
        return LoadedModel.from_sidecar(network.eval(), sidecar, "weights")
    kind = inspect_file(path)  # intact: torch.jit.load checks no checksums either
    if kind != "torchscript":
        raise wrong_kind(
            path, kind, f"a TorchScript archive (the format its sidecar {sidecar_path(path)} names)"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        network = torch.jit.load(str(path), map_location="cpu").eval()
    check_finite(network.state_dict(), path)
    return LoadedModel.from_sidecar(network, sidecar, "torchscript")


def _read_program(path: Path) -> LoadedModel:
    """A ``torch.export`` program from unet-export (format=pt2), as its ``.module()``."""
    sidecar = read_sidecar(path)
    kind = inspect_file(path)  # a zip archive: every member's checksum is tested
    if kind not in ("torch", "torchscript"):
        raise wrong_kind(path, kind, "a torch.export program (unet-export format=pt2)")
    try:
        program = torch.export.load(str(path))
    except Exception as error:  # torch's own errors for a zip that is not an exported program
        raise CheckpointError(
            f"{path} is not a readable torch.export program: {str(error).splitlines()[0]}"
        ) from None
    check_finite(program.state_dict, path)
    return LoadedModel.from_sidecar(program.module(), sidecar, "pt2")


def _refuse_onnx(path: Path) -> LoadedModel:
    raise CheckpointError(
        f"{path} is an ONNX model: onnxruntime runs it (unet-predict, unet.inference.load_predictor), "
        "it does not load as a torch module"
    )


# What reads each kind of model file, by suffix.
MODEL_READERS: dict[str, Callable[[Path], LoadedModel]] = {
    ".ckpt": _read_checkpoint,
    ".pt": _read_torch_export,
    ".pth": _read_torch_export,
    ".pt2": _read_program,
    ".onnx": _refuse_onnx,
}


def load_model(path: str | Path) -> LoadedModel:
    """The trained network in ``path`` (on the CPU, in eval mode) with its classes, normalisation and
    config: a ``.ckpt`` training checkpoint, or a ``.pt``/``.pth`` (plain weights or TorchScript) or
    ``.pt2`` export beside its JSON sidecar.

    A damaged file, one that would run code when unpickled, weights holding NaN or an infinity and a
    config naming code outside the trusted packages are refused with a :class:`CheckpointError` naming
    the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"model file not found: {path}")
    reader = MODEL_READERS.get(path.suffix.lower())
    if reader is None:
        raise CheckpointError(
            f"cannot tell the model format of {path}: expected one of {', '.join(sorted(MODEL_READERS))}"
        )
    return reader(path)
