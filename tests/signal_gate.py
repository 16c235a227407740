"""A callback the signal tests add to a real ``unet-train`` (``+callbacks.gate._target_=signal_gate.HoldAtStep``,
with ``tests/`` on ``PYTHONPATH``): the run holds at a given step until the test has sent its signal, so
the signal lands at a known step instead of wherever a timer's guess put it.

At the end of training step ``step`` (before ``last.ckpt``'s own hook, Lightning runs checkpoint callbacks
last) it writes ``marker`` and waits until the test removes it. A signal sent while it waits is handled
before the wait ends (Python runs signal handlers between the sleeps), so the run acts on it at this step.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger


class HoldAtStep(L.Callback):
    def __init__(self, step: int, marker: str, timeout_s: float = 120.0) -> None:
        self.step, self.marker, self.timeout_s = step, Path(marker), timeout_s

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step != self.step:
            return
        self.marker.write_text("holding")
        deadline = time.monotonic() + self.timeout_s
        while self.marker.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody released {self.marker} within {self.timeout_s} s")
            time.sleep(0.01)


class SigtermWhenLogging(Logger):
    """A logger that sends this process SIGTERM as a training step's metrics reach it from ``epoch`` on.

    Lightning logs a step's metrics after every callback's ``on_train_batch_end``: the signal lands after
    ``last.ckpt``'s check of that step, and before Lightning's own (as a signal sent when a CSV log line
    appears does).
    """

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch, self.sent = epoch, False

    @property
    def name(self) -> str:
        return "sigterm_when_logging"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stepping = any(key.startswith("train/") for key in metrics)
        if self.sent or not stepping or metrics.get("epoch", -1) < self.epoch:
            return
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):  # never end the test process
            raise RuntimeError("no SIGTERM handler installed: the run would be killed")
        self.sent = True
        os.kill(os.getpid(), signal.SIGTERM)
