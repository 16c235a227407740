"""Weights saved every N seconds of training: the score-vs-wall-clock curves of
``unet-benchmark mode=time_to_quality``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L

from unet.utils.errors import ConfigError
from unet.utils.files import write_json


class TimedSnapshots(L.Callback):
    """Saves the weights every ``every_s`` seconds of training into ``dirpath/t<seconds>.ckpt``, listed in
    ``dirpath/snapshots.json`` (``{"seconds", "step", "file"}``), and once more when training ends.

    Scored afterwards on held-out data, they give a score-vs-wall-clock curve (``unet-benchmark
    mode=time_to_quality``) that costs the run only the saving: scoring during training would spend the
    budget being measured. The clock starts with training, as ``trainer.max_time``'s does.
    """

    def __init__(self, dirpath: str, every_s: float = 20.0) -> None:
        if every_s <= 0:
            raise ConfigError(f"every_s must be > 0 seconds, got {every_s}")
        self.dirpath = Path(dirpath)
        self.every_s = float(every_s)
        self.records: list[dict[str, Any]] = []
        self._started = 0.0
        self._next = self.every_s

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()
        self._next = self.every_s

    def _save(self, trainer: L.Trainer, seconds: float) -> None:
        name = f"t{seconds:08.1f}s.ckpt"
        trainer.save_checkpoint(self.dirpath / name, weights_only=False)  # resumable, like last.ckpt
        if trainer.is_global_zero:
            self.records.append({"seconds": round(seconds, 2), "step": trainer.global_step, "file": name})
            write_json(self.dirpath / "snapshots.json", self.records)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        seconds = time.perf_counter() - self._started
        # Every process saves together (a distributed save is collective): rank 0's clock decides.
        if trainer.strategy.broadcast(seconds >= self._next):
            self._save(trainer, seconds)
            while self._next <= seconds:
                self._next += self.every_s

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.records or self.records[-1]["step"] != trainer.global_step:
            self._save(trainer, time.perf_counter() - self._started)
