"""Load training checkpoints safely: tensors and builtins only, never code from the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from unet.training.module import SegmentationModule

RUN_CONFIG_KEY = "unet_run_config"


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
    """A training checkpoint of this framework (weights and hyper-parameters), read by :func:`load_safely`."""
    checkpoint = load_safely(path)
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise CheckpointError(f"{path} is not a unet training checkpoint (no state_dict/hyper_parameters)")
    return checkpoint


def module_from_checkpoint(path: str | Path) -> tuple[SegmentationModule, dict[str, Any]]:
    """Rebuild the trained module from the checkpoint alone; returns it (in eval mode) and the checkpoint."""
    checkpoint = load_checkpoint(path)
    module = SegmentationModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval(), checkpoint
