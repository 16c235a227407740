"""Per-step seeding: a resumed run repeats exactly what the uninterrupted run did."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from unet.utils.seeding import derive_seed


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
