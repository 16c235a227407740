"""Keep the training run's resolved config inside every checkpoint it writes."""

from __future__ import annotations

from typing import Any

import lightning as L

from unet.training.checkpoint import RUN_CONFIG_KEY


class StoreRunConfig(L.Callback):
    """Adds the run's config (plain builtins) to each checkpoint under ``unet_run_config``.

    With it a checkpoint alone says which data it was trained on, so evaluation needs no config.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.config
