"""No checkpoint of diverged weights: a NaN or an infinity in the weights keeps the last good checkpoint."""

from __future__ import annotations

from typing import Any

import lightning as L

from unet.models.safe_loading import non_finite_tensor
from unet.utils.errors import TrainingDivergedError


class FiniteCheckpoints(L.Callback):
    """Refuses to write a checkpoint whose weights hold NaN or an infinity: the last good one is kept.

    A diverging step can leave non-finite weights behind a finite loss; the loss check of the next
    step stops the run, but a checkpoint written in between (an epoch's end, a signal) would have
    replaced the last good ``last.ckpt`` with unusable weights.
    """

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        name = non_finite_tensor(checkpoint.get("state_dict", {}))
        if name is not None:
            raise TrainingDivergedError(
                f"the weights became non-finite (NaN or Inf in {name}) by global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); nothing was saved and the last good checkpoint is kept: "
                "lower the learning rate or check the data"
            )
