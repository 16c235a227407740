"""Callbacks that make runs inspectable: prediction images and the HParams table in TensorBoard."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unet.utils.files import write_json
from unet.utils.seeding import derive_seed
from unet.utils.visualize import comparison_panel


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


class MetricsHistory(L.Callback):
    """Writes ``history.json``: one record of the validation metrics per validation epoch.

    Reports draw learning curves from it without parsing TensorBoard files. The history travels in
    checkpoints, so a resumed run's file holds the whole curve.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.history: list[dict[str, float]] = []
        self._started = time.monotonic()
        self._time_offset = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        record = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "time_s": round(self._time_offset + time.monotonic() - self._started, 3),
        }
        record.update(
            {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("val/")}
        )
        self.history.append(record)
        write_json(self.path, self.history)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self._time_offset = self.history[-1]["time_s"] if self.history else 0.0


class StepSeeding(L.Callback):
    """Seeds the random state of every training step (dropout, random layers) from ``(seed, epoch, batch)``.

    Data order and augmentations are already functions of ``(seed, epoch)`` (see
    :class:`unet.data.sampling.EpochSampler`); with this, a step does not depend on the random draws
    before it either, so a run resumed from a checkpoint repeats exactly what the uninterrupted run did.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step_seed = derive_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        random.seed(step_seed)
        np.random.seed(step_seed)
        torch.manual_seed(step_seed)


class SaveOnSigterm(L.Callback):
    """On SIGTERM (what cluster schedulers send before killing a job), save ``last.ckpt`` and stop.

    Lightning only notes the signal; this saves at the end of the current batch instead of losing the
    epoch, then ends the run with :class:`SIGTERMException`.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.received_sigterm:
            return
        checkpoint = trainer.checkpoint_callback
        directory = (
            Path(checkpoint.dirpath)
            if checkpoint is not None and checkpoint.dirpath
            else Path(trainer.default_root_dir)
        )
        trainer.save_checkpoint(directory / "last.ckpt")
        raise SIGTERMException()
