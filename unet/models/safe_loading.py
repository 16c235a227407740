"""Read model files without trusting them: intact files only, tensors and builtins only, finite weights,
and configs that name only trusted code.

``torch.load`` checks neither the archive's checksums (a file with flipped bytes loads, with silently
different weights) nor what kind of file it was given; :func:`inspect_file` does both first.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from unet.models.networks import check_trusted_targets
from unet.utils.errors import ConfigError, InputFileError

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


class CheckpointError(InputFileError):
    """A model file (checkpoint or export) that is missing, damaged, unsafe to unpickle or not one of
    this framework's."""


# How torch's refusal names what the file would call or rebuild: ``GLOBAL posix.system``.
UNPICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with ``ir_version`` (field 1, a varint), then another of its fields."""
    if len(head) < 3 or head[0] != 0x08:
        return False
    position = 1
    while position < len(head) and head[position] & 0x80:  # the varint's continuation bytes
        position += 1
    # producer_name, producer_version, domain, model_version, doc_string, graph, opset_import
    return position + 1 < len(head) and head[position + 1] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def _check_archive(path: Path) -> str:
    """The kind of a zip archive (``torch`` or ``torchscript``) once every member's CRC matches."""
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
    return "torchscript" if any(name.endswith("/constants.pkl") for name in names) else "torch"


def inspect_file(path: str | Path) -> str:
    """What the file is (``torch``, ``legacy_torch``, ``torchscript``, ``onnx`` or ``unknown``), once it is
    found intact.

    A zip archive (what ``torch.save``, ``torch.jit.save`` and ``torch.export.save`` write) has every
    member's CRC checked, so flipped or zeroed bytes and a truncated copy raise :class:`CheckpointError`
    naming the file instead of loading as different weights. That reads the file once more than loading
    it does.
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
        kind = _check_archive(path)
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(unsafe_file_message(path, error)) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from None


def unsafe_file_message(path: str | Path, error: pickle.UnpicklingError) -> str:
    """The refusal of a file that only running code could unpickle, without PyTorch's advice to load it
    with ``weights_only=False`` (for a crafted file, the way to run its code): what it names, and that it
    was not loaded."""
    named = UNPICKLED_GLOBAL.search(str(error))
    what = f" (it names {named.group(1)}, which only code could rebuild)" if named else ""
    return f"refusing to load {path}: it would run code when loaded{what}; it was not loaded"


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


def check_finite(tensors: Mapping[str, Any], path: str | Path, advice: str = "") -> None:
    """Refuse weights holding NaN or an infinity (a run that diverged), naming the file and the tensor."""
    name = non_finite_tensor(tensors)
    if name is not None:
        raise CheckpointError(
            f"{path} holds non-finite values (NaN or Inf) in {name}: its weights are unusable{advice}"
        )


def check_trusted(config: Any, path: str | Path) -> None:
    """Refuse a config read from ``path`` naming a ``_target_`` outside the trusted packages, naming the file
    (:func:`unet.models.networks.check_trusted_targets`)."""
    try:
        check_trusted_targets(config)
    except ConfigError as error:
        raise CheckpointError(f"{path} cannot be loaded: {error}") from None


def is_state_dict(value: Any) -> bool:
    """A non-empty dict of named tensors: what ``state_dict()`` returns and a weights export holds."""
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    )
