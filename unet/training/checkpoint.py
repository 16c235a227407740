"""Load training checkpoints safely: intact files only, tensors and builtins only, never code from the file.

``torch.load`` checks neither the archive's checksums (a checkpoint with flipped bytes loads, with
silently different weights) nor what kind of file it was given; :func:`inspect_file` does both first.
"""

from __future__ import annotations

import inspect
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import unet
from unet.models.networks import check_trusted_targets, resolve_target
from unet.training.module import CHECKPOINT_FORMAT, FORMAT_KEY, VERSION_KEY, SegmentationModule

RUN_CONFIG_KEY = "unet_run_config"
# The U-Net options format 1 kept beside the module's own (format 2 keeps them under ``net``).
FORMAT_1_NET_KEYS = (
    "depth", "base_channels", "fuse", "norm", "activation", "dropout", "decoder_width", "checkpoint_encoder",
)  # fmt: skip
TRAINING_CHECKPOINT = "a training checkpoint (.ckpt, written by unet-train)"
PLAIN_WEIGHTS = "plain network weights (unet-export format=weights)"
# What the kinds of file :func:`inspect_file` tells apart are, in messages.
FILE_KINDS = {
    "torch": "a torch.save archive (a training checkpoint or plain weights)",
    "legacy_torch": "a torch.save file of the pre-1.6 format",
    "onnx": "an ONNX model (an export)",
    "torchscript": "a TorchScript archive (an export)",
    "unknown": "not a PyTorch file (neither a torch.save archive nor an export of one)",
}
# The start of a file torch.save wrote in its pre-1.6 format (a pickled magic number): no checksums to test.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a"
# Files already found intact in this process, by identity: a resume reads a checkpoint more than once.
_INTACT: dict[tuple[str, int, int, int, int], str] = {}


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, unsafe to unpickle or not one of this framework's."""


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with ``ir_version`` (field 1, a varint), then another of its fields."""
    if len(head) < 3 or head[0] != 0x08:
        return False
    position = 1
    while position < len(head) and head[position] & 0x80:  # the varint's continuation bytes
        position += 1
    # producer_name, producer_version, domain, model_version, doc_string, graph, opset_import
    return position + 1 < len(head) and head[position + 1] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def inspect_file(path: str | Path) -> str:
    """What the file is (``torch``, ``legacy_torch``, ``torchscript``, ``onnx`` or ``unknown``), once it is
    found intact.

    A zip archive (what ``torch.save`` and ``torch.jit.save`` write) has every member's CRC checked, so
    flipped or zeroed bytes and a truncated copy raise :class:`CheckpointError` naming the file instead
    of loading as different weights. That reads the file once more than loading it does.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    stat = path.stat()
    identity = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if identity in _INTACT:
        return _INTACT[identity]
    if stat.st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): an unfinished or damaged copy")
    with path.open("rb") as file:
        head = file.read(64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                damaged = archive.testzip()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
            raise CheckpointError(
                f"{path} is damaged (truncated or corrupted: {error}); use another copy or an earlier checkpoint"
            ) from None
        if damaged is not None:
            raise CheckpointError(
                f"{path} is damaged: the bytes of its member {damaged} do not match their checksum; "
                "use another copy or an earlier checkpoint"
            )
        kind = "torchscript" if any(name.endswith("/constants.pkl") for name in names) else "torch"
    elif head.startswith(LEGACY_TORCH_MAGIC):
        kind = "legacy_torch"
    elif _looks_like_onnx(head):
        kind = "onnx"
    else:
        kind = "unknown"
    _INTACT[identity] = kind
    return kind


def wrong_kind(path: str | Path, kind: str, expected: str) -> CheckpointError:
    """The error for a file of the wrong kind: what it is, and what is expected instead."""
    hint = "; exported models run with unet-predict" if kind in ("onnx", "torchscript") else ""
    return CheckpointError(f"{path} is {FILE_KINDS[kind]}; {expected} is expected here{hint}")


def load_safely(path: str | Path, expected: str = TRAINING_CHECKPOINT) -> Any:
    """Read a file written by ``torch.save`` with ``torch.load(weights_only=True)``, once it is found intact.

    A file that needs arbitrary code to unpickle is refused rather than executed; a damaged file or one
    of another kind (an export, something else) is refused naming what it is and ``expected``.
    """
    path = Path(path)
    kind = inspect_file(path)
    if kind not in ("torch", "legacy_torch"):
        raise wrong_kind(path, kind, expected)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects that only arbitrary code could rebuild "
            f"(weights_only=True load failed: {str(error).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from None
    return checkpoint


def non_finite_tensor(tensors: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding NaN or an infinity, ``None`` if all are finite."""
    for name, tensor in tensors.items():
        if (
            isinstance(tensor, torch.Tensor)
            and tensor.is_floating_point()
            and not torch.isfinite(tensor).all()
        ):
            return name
    return None


def is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A network's plain state dict (``unet-export format=weights``), intact, safe and finite."""
    state = load_safely(path, expected=PLAIN_WEIGHTS)
    if isinstance(state, dict) and "state_dict" in state and "hyper_parameters" in state:
        raise CheckpointError(
            f"{path} is a training checkpoint, not {PLAIN_WEIGHTS}: name it .ckpt (it needs no sidecar)"
        )
    if not is_state_dict(state):
        raise CheckpointError(f"{path} does not hold {PLAIN_WEIGHTS}: expected a dict of named tensors")
    name = non_finite_tensor(state)
    if name is not None:
        raise CheckpointError(
            f"{path} holds non-finite values (NaN or Inf) in {name}: these weights are unusable"
        )
    return state


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint of this framework (weights and hyper-parameters), read by :func:`load_safely`.

    Weights holding NaN or an infinity are refused, naming the tensor. Hyper-parameters of an older format are upgraded to the current one; a checkpoint of a newer
    format than this version reads is refused, naming both versions.
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
    name = non_finite_tensor(checkpoint["state_dict"])
    if name is not None:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite values (NaN or Inf) in {name}: its weights are unusable "
            "(a run that diverged); use an earlier checkpoint"
        )
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
    # The state dict holds the trained weights: the pretrained ones the run started from are not read.
    module = SegmentationModule(**{**checkpoint["hyper_parameters"], "encoder_weights": None})
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
