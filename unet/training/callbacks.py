"""Callbacks that make runs inspectable: prediction images and the HParams table in TensorBoard."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from unet.training.visualize import comparison_panel


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    """The run's TensorBoard logger, or ``None`` when it logs elsewhere (or nowhere)."""
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


class PredictionImages(L.Callback):
    """Every ``every_n_epochs``, log input | ground truth | prediction for the first validation images.

    The same images every time, so the panel shows how the prediction of one input evolves.
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
        logger = tensorboard_logger(trainer)
        epoch = trainer.current_epoch
        if logger is None or self._batch is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != trainer.max_epochs:
            return
        images, masks = self._batch
        with torch.no_grad():
            predictions = pl_module(images.to(pl_module.device)).argmax(dim=1).cpu()
        hparams = pl_module.hparams
        panel = comparison_panel(
            images, masks, predictions, hparams.mean, hparams.std, hparams.get("ignore_index")
        )
        logger.experiment.add_image("val/prediction", panel, global_step=trainer.global_step)
