"""How the trainer writes and reads checkpoints: atomically, and without unpickling code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from unet.models.safe_loading import load_safely
from unet.utils.files import atomic_write


class SafeCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file beside the target and renamed into place.

    A process killed mid-write leaves the previous checkpoint intact (never half a file), and resuming
    reads with ``torch.load(weights_only=True)``, refusing files that would run code when loaded.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        with atomic_write(path, "wb") as file:
            torch.save(checkpoint, file)

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_safely(path)  # also Lightning's own files, e.g. ddp_spawn's weight transfer
