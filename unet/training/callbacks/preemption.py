"""Stopping safely: ``last.ckpt`` at every epoch end and every few minutes of training, and on SIGTERM, Ctrl-C
or SLURM's requeue signal at the end of the current step (then ``scontrol requeue`` under SLURM), after which
the run stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unet.training.callbacks.epoch_end_resume import replaying_epoch_end
from unet.utils.errors import ConfigError

log = logging.getLogger(__name__)

# What a process stopped by Ctrl-C conventionally exits with (128 + SIGINT).
SIGINT_EXIT_CODE = 130


class StoppedBySigint(SystemExit):
    """Ends a run stopped by Ctrl-C (SIGINT) after ``last.ckpt`` was saved; the process exits with 130."""

    def __init__(self) -> None:
        super().__init__(SIGINT_EXIT_CODE)


class Requeued(SystemExit):
    """Ends a SLURM job's run after ``last.ckpt`` was saved and the job requeued; the process exits with 0
    (the requeued job carries the run on)."""

    def __init__(self) -> None:
        super().__init__(0)


def slurm_job_id() -> str:
    """This SLURM job's id as ``scontrol`` takes it: ``<array job>_<task>`` for a job array's task."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]


def requeue_slurm_job() -> None:
    """``scontrol requeue`` this job, as Lightning's ``SLURMEnvironment(auto_requeue=True)`` does."""
    job_id = slurm_job_id()
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], check=False).returncode
    except FileNotFoundError:
        result = "scontrol not found"
    if result:
        log.error("requeueing SLURM job %s failed (%s): resume its run with ckpt_path=last", job_id, result)
    else:
        log.warning("SLURM job %s requeued: it resumes this run from last.ckpt", job_id)


def parse_signal(name: str | None) -> signal.Signals | None:
    """``"SIGUSR1"`` -> the signal; ``None`` stays ``None``."""
    if name is None:
        return None
    try:
        return signal.Signals[str(name).upper()]
    except KeyError:
        raise ConfigError(
            f"callbacks.last_checkpoint.requeue_signal: expected a signal name such as SIGUSR1, got {name!r}"
        ) from None


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt`` the run's latest state: saved at the end of every training epoch, at the end of
    the first step ``every_minutes`` after the last save (``None``: only at epoch ends), and on SIGTERM or
    SIGINT (Ctrl-C) at the end of the current training step, after which the run stops.

    A run killed outright (SIGKILL, a power cut, the out-of-memory killer) resumes from it, losing at
    most ``every_minutes`` of training and never an epoch of a large data set; a step's checkpoint
    resumes as exactly as an epoch's (the training loader resumes mid-epoch). Files are written to a
    temporary name and renamed (:class:`~unet.training.checkpoint_io.SafeCheckpointIO`), so a kill while
    writing leaves the previous one whole.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes it only when it checkpoints at a validation,
    so with validation every few epochs a crash would silently resume epochs back. Epoch-end
    checkpoints are exact resume points (the data order is a function of the epoch). Schedulers send
    SIGTERM before killing a job; Ctrl-C asks for the same, and a second Ctrl-C stops at once, unsaved.
    In a distributed run the processes agree on stopping and saving at the same step (one all-reduce per
    step).
    Being a :class:`~lightning.pytorch.callbacks.Checkpoint`, it runs after the module's epoch-end hooks.

    Under SLURM (Lightning's ``SLURMEnvironment`` detected), ``requeue_signal`` (``sbatch
    --signal=USR1@90``: sent before the time limit) saves ``last.ckpt`` at the end of the step, runs
    ``scontrol requeue`` and stops; the requeued job resumes in place (:func:`unet.training.run.resolve_checkpoint`).
    It takes the signal over from Lightning's auto-requeue, which would checkpoint in the middle of a
    step into an ``hpc_ckpt_N.ckpt`` our runs do not resume from (registered first, at fit start, so
    Lightning leaves the signal to it).
    """

    def __init__(
        self,
        dirpath: str,
        filename: str = "last",
        requeue_signal: str | None = "SIGUSR1",
        every_minutes: float | None = 10,
    ) -> None:
        if every_minutes is not None and not every_minutes > 0:
            raise ConfigError(
                "callbacks.last_checkpoint.every_minutes: expected minutes > 0, or null for epoch ends only, "
                f"got {every_minutes!r}"
            )
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.requeue_signal = parse_signal(requeue_signal)
        self.every_s = None if every_minutes is None else 60.0 * every_minutes
        self._saved_at = time.monotonic()
        self._saved_step: int | None = None
        self._sigint = False
        self._requeue = False
        self._previous_handlers: dict[signal.Signals, Any] = {}

    # -- Ctrl-C and SLURM's requeue signal ----------------------------------------------------------

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._sigint = True
        signal.signal(signal.SIGINT, self._previous_handlers[signal.SIGINT])  # a second Ctrl-C stops at once
        log.warning(
            "Ctrl-C: saving %s at the end of this training step, then stopping (Ctrl-C again stops at once)",
            self.path,
        )

    def _on_requeue_signal(self, signum: int, frame: Any) -> None:
        self._requeue = True
        log.warning("SLURM signal %s: saving %s at the end of this step, then requeueing", signum, self.path)

    def _handlers(self) -> dict[signal.Signals, Callable[[int, Any], None]]:
        handlers = {signal.SIGINT: self._on_sigint}
        if self.requeue_signal is not None and SLURMEnvironment.detect():
            handlers[self.requeue_signal] = self._on_requeue_signal
        return handlers

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sigint = self._requeue = False
        self._saved_at = time.monotonic()
        self._saved_step = None
        if threading.current_thread() is not threading.main_thread() or self._previous_handlers:
            return
        for signum, handler in self._handlers().items():
            previous = signal.signal(signum, handler)
            if signum == signal.SIGINT and previous is None:
                previous = signal.default_int_handler
            self._previous_handlers[signum] = signal.SIG_DFL if previous is None else previous

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous_handlers.items():
            if signal.getsignal(signum) in (self._on_sigint, self._on_requeue_signal):
                signal.signal(signum, previous)
        self._previous_handlers = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if self._stopped_unsaved_by_sigterm(trainer, exception):
            self.save(trainer)

    # -- saving -------------------------------------------------------------------------------------

    def save(self, trainer: L.Trainer) -> None:
        # weights_only=False: the whole training state (Lightning logs a notice when it is left unset)
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at = time.monotonic()
        self._saved_step = trainer.global_step

    def _stopped_unsaved_by_sigterm(self, trainer: L.Trainer, exception: BaseException) -> bool:
        """Whether Lightning's own SIGTERM check stopped the run at a finished step this callback has not saved.

        Lightning checks for SIGTERM again after the step's later hooks and its loggers (a CSV log is
        written there): a signal landing after :meth:`on_train_batch_end` stops the run before the next
        one. Saved here, that step is what the run resumes from, not the previous save's. Not in a
        validation (its loop stands mid-way) nor across processes (saving takes all of them, and each
        may have stopped elsewhere).
        """
        return (
            isinstance(exception, SIGTERMException)
            and trainer.received_sigterm
            and trainer.training
            and trainer.world_size == 1
            and not trainer.fast_dev_run
            and self._saved_step != trainer.global_step
        )

    def _requests(self, trainer: L.Trainer) -> tuple[bool, bool]:
        """``(stop, save)``: whether a signal asked to stop, and whether a timed save is due, on any process
        (all of them act at the same step)."""
        stop = bool(trainer.received_sigterm or self._sigint or self._requeue)
        due = (
            self.every_s is not None
            and not trainer.fast_dev_run  # a dry run writes nothing
            and time.monotonic() - self._saved_at >= self.every_s
        )
        if trainer.world_size > 1:
            flags = torch.tensor([stop, due], dtype=torch.float32, device=trainer.strategy.root_device)
            stop, due = (bool(flag > 0) for flag in trainer.strategy.reduce(flags, reduce_op="sum").tolist())
        return stop, due

    def _stop_exception(self, trainer: L.Trainer) -> BaseException:
        """What ends the run that a signal asked to stop."""
        if trainer.received_sigterm:
            return SIGTERMException()
        return Requeued() if self._requeue else StoppedBySigint() if self._sigint else SIGTERMException()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop, due = self._requests(trainer)
        if stop or due:
            self.save(trainer)
        if stop:
            exception = self._stop_exception(trainer)
            if isinstance(exception, Requeued) and trainer.is_global_zero:
                requeue_slurm_job()
            raise exception

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A dry run writes nothing; an epoch end Lightning replays on resuming is the checkpoint's own.
        if trainer.sanity_checking or trainer.fast_dev_run or replaying_epoch_end(trainer):
            return
        self.save(trainer)
