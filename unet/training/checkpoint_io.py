"""How the trainer writes and reads checkpoints: atomically, and without unpickling code."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from unet.training.checkpoint import load_safely


class SafeCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file beside the target and renamed into place.

    A process killed mid-write leaves the previous checkpoint intact (never half a file), and resuming
    reads with ``torch.load(weights_only=True)``, refusing files that would run code when loaded.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_safely(path)  # also Lightning's own files, e.g. ddp_spawn's weight transfer
