"""Resuming a step-limited run from an epoch-end checkpoint: the epoch counted once, as it was."""

from __future__ import annotations

import lightning as L


def replaying_epoch_end(trainer: L.Trainer) -> bool:
    """Whether Lightning is replaying the end of the epoch a checkpoint was written at (Lightning < 2.5
    has no such stage)."""
    return getattr(trainer.fit_loop, "restarted_on_epoch_end", False)


class EpochEndResume(L.Callback):
    """Takes back the second count of an epoch Lightning replays the end of when a run resumes.

    A run with ``trainer.max_steps`` resumed from a checkpoint written at an epoch's end (``last.ckpt``)
    is restarted by Lightning at that epoch's end hooks, which count the epoch as processed again.
    The samplers take their epoch from that count and ``trainer.max_epochs`` is checked against it, so
    the resumed run would train every later epoch on the next epoch's order and augmentations (and
    end an epoch early): not the run it resumed.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if replaying_epoch_end(trainer):
            progress = trainer.fit_loop.epoch_progress
            progress.current.processed -= 1
            progress.total.processed -= 1
