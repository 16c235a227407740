"""Input | ground truth | prediction panels of the first validation images, shown by every logger of
the run."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from unet.training.loggers import image_writers
from unet.utils.class_maps import class_map
from unet.utils.visualize import comparison_panel


class PredictionImages(L.Callback):
    """Every ``every_n_epochs``, log input | ground truth | prediction for the first validation images.

    The same images every time, so the panel shows how the prediction of one input evolves. Every
    logger of the run gets the panel through its own image API (:data:`unet.training.loggers.IMAGE_WRITERS`).
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 4) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and self._batch is None:
            images, masks = batch
            self._batch = (images[: self.num_images].detach().cpu(), masks[: self.num_images].detach().cpu())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writers = image_writers(trainer)
        epoch = trainer.current_epoch
        if not writers or self._batch is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != trainer.max_epochs:
            return
        images, masks = self._batch
        with torch.no_grad():
            predictions = class_map(pl_module(images.to(pl_module.device))).cpu()
        hparams = pl_module.hparams
        panel = comparison_panel(
            images, masks, predictions, hparams.mean, hparams.std, hparams.get("ignore_index")
        )
        for logger, write in writers:
            write(logger, "val/prediction", panel, trainer.global_step)
