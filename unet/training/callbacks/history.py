"""``history.json``: the validation metrics of every validation epoch, for learning curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L

from unet.utils.files import write_json


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
