"""Callbacks that make runs inspectable and safe to stop: prediction images, the metrics history, the run
summary, the latest checkpoint at every epoch end and signal, and no checkpoint of diverged weights."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint, ModelSummary
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)
from PIL import Image

from unet.models.safe_loading import non_finite_tensor
from unet.utils.files import write_json
from unet.utils.seeding import derive_seed
from unet.utils.tables import text_table
from unet.utils.visualize import comparison_panel

log = logging.getLogger(__name__)


def _rgb_array(panel: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` uint8 -> ``(H, W, 3)``: what image files and trackers other than TensorBoard take."""
    return panel.permute(1, 2, 0).numpy()


def _tensorboard_image(logger: TensorBoardLogger, name: str, panel: torch.Tensor, step: int) -> None:
    logger.experiment.add_image(name, panel, global_step=step)


def _mlflow_image(logger: MLFlowLogger, name: str, panel: torch.Tensor, step: int) -> None:
    # A step series under `name` (the run's Images view); synchronous, so the last one is not lost at exit.
    logger.experiment.log_image(logger.run_id, _rgb_array(panel), key=name, step=step, synchronous=True)


def _wandb_image(logger: WandbLogger, name: str, panel: torch.Tensor, step: int) -> None:
    logger.log_image(name, [_rgb_array(panel)], step=step)


def _csv_image(logger: CSVLogger, name: str, panel: torch.Tensor, step: int) -> None:
    """A CSV file cannot hold an image: a PNG beside it, ``images/<name>_step_<step>.png``."""
    path = Path(logger.log_dir) / "images" / f"{name.replace('/', '_')}_step_{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb_array(panel)).save(path)


# Writes one image through a logger's own API: (logger, name, (3, H, W) uint8 panel, global step).
ImageWriter = Callable[[Any, str, torch.Tensor, int], None]
# How each kind of logger shows an image; a logger of another kind gets none.
IMAGE_WRITERS: dict[type[Logger], ImageWriter] = {
    TensorBoardLogger: _tensorboard_image,
    MLFlowLogger: _mlflow_image,
    WandbLogger: _wandb_image,
    CSVLogger: _csv_image,
}


def image_writers(trainer: L.Trainer) -> list[tuple[Logger, ImageWriter]]:
    """The run's loggers that can show an image, each with its writer."""
    found = []
    for logger in trainer.loggers:
        writer = next((w for kind, w in IMAGE_WRITERS.items() if isinstance(logger, kind)), None)
        if writer is not None:
            found.append((logger, writer))
    return found


class PredictionImages(L.Callback):
    """Every ``every_n_epochs``, log input | ground truth | prediction for the first validation images.

    The same images every time, so the panel shows how the prediction of one input evolves. Every
    logger of the run gets the panel through its own image API (:data:`IMAGE_WRITERS`).
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
            predictions = pl_module(images.to(pl_module.device)).argmax(dim=1).cpu()
        hparams = pl_module.hparams
        panel = comparison_panel(
            images, masks, predictions, hparams.mean, hparams.std, hparams.get("ignore_index")
        )
        for logger, write in writers:
            write(logger, "val/prediction", panel, trainer.global_step)


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


class TimedSnapshots(L.Callback):
    """Saves the weights every ``every_s`` seconds of training into ``dirpath/t<seconds>.ckpt``, listed in
    ``dirpath/snapshots.json`` (``{"seconds", "step", "file"}``), and once more when training ends.

    Scored afterwards on held-out data, they give a score-vs-wall-clock curve (``unet-benchmark
    time_to_quality=true``) that costs the run only the saving: scoring during training would spend the
    budget being measured. The clock starts with training, as ``trainer.max_time``'s does.
    """

    def __init__(self, dirpath: str, every_s: float = 20.0) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be > 0 seconds, got {every_s}")
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
        raise ValueError(
            f"callbacks.last_checkpoint.requeue_signal: expected a signal name such as SIGUSR1, got {name!r}"
        ) from None


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt`` the run's latest state: saved at the end of every training epoch, and on
    SIGTERM or SIGINT (Ctrl-C) at the end of the current training step, after which the run stops.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes it only when it checkpoints at a validation,
    so with validation every few epochs a crash would silently resume epochs back. Epoch-end
    checkpoints are exact resume points (the data order is a function of the epoch). Schedulers send
    SIGTERM before killing a job; Ctrl-C asks for the same, and a second Ctrl-C stops at once, unsaved.
    In a distributed run the processes agree on stopping at the same step (one all-reduce per step).
    Being a :class:`~lightning.pytorch.callbacks.Checkpoint`, it runs after the module's epoch-end hooks.

    Under SLURM (Lightning's ``SLURMEnvironment`` detected), ``requeue_signal`` (``sbatch
    --signal=USR1@90``: sent before the time limit) saves ``last.ckpt`` at the end of the step, runs
    ``scontrol requeue`` and stops; the requeued job resumes in place (:func:`unet.training.run.resolve_checkpoint`).
    It takes the signal over from Lightning's auto-requeue, which would checkpoint in the middle of a
    step into an ``hpc_ckpt_N.ckpt`` our runs do not resume from (registered first, at fit start, so
    Lightning leaves the signal to it).
    """

    def __init__(self, dirpath: str, filename: str = "last", requeue_signal: str | None = "SIGUSR1") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.requeue_signal = parse_signal(requeue_signal)
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

    # -- saving -------------------------------------------------------------------------------------

    def save(self, trainer: L.Trainer) -> None:
        # weights_only=False: the whole training state (Lightning logs a notice when it is left unset)
        trainer.save_checkpoint(self.path, weights_only=False)

    def _stop_requested(self, trainer: L.Trainer) -> BaseException | None:
        """The exception that ends the run when a signal asked for it (on any process), else ``None``."""
        requested = bool(trainer.received_sigterm or self._sigint or self._requeue)
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if not requested:
            return None
        if trainer.received_sigterm:
            return SIGTERMException()
        return Requeued() if self._requeue else StoppedBySigint() if self._sigint else SIGTERMException()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self._stop_requested(trainer)
        if stop is not None:
            self.save(trainer)
            if isinstance(stop, Requeued) and trainer.is_global_zero:
                requeue_slurm_job()
            raise stop

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:  # a dry run writes nothing
            return
        self.save(trainer)


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
            raise FloatingPointError(
                f"the weights became non-finite (NaN or Inf in {name}) by global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); nothing was saved and the last good checkpoint is kept: "
                "lower the learning rate or check the data"
            )


class ParameterSummary(ModelSummary):
    """Lightning's layer summary without its FLOPs column and total.

    FLOPs are counted on an example input, which the module cannot have (it takes any image size), so
    Lightning would report 0 FLOPs for every layer; ``unet-benchmark`` measures the real costs.
    """

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int = 0,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name.strip() and name != "FLOPs"]
        names = [name for name, _ in columns]
        records = [dict(zip(names, row, strict=True)) for row in zip(*(v for _, v in columns), strict=True)]
        table = text_table([(name, name, "{}") for name, _ in columns], records, rule=True, left=(0, 1, 3))
        log.info(
            "\n%s\n%s trainable parameters, %s non-trainable (%s MB)",
            table,
            get_human_readable_count(trainable_parameters).strip(),
            get_human_readable_count(total_parameters - trainable_parameters).strip(),
            get_formatted_model_size(model_size),
        )


def format_duration(seconds: float) -> str:
    """``"14 min 32 s"``, ``"2 h 05 min"``, ``"3.2 s"``: as precise as a reader of a run's length needs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def batch_length(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor (``(images, masks)``)."""
    while isinstance(batch, list | tuple | dict):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0]) if hasattr(batch, "shape") else 1


# The trainer keys that make validation cheaper, named when validation dominates a run.
VALIDATION_KEYS = (
    "trainer.check_val_every_n_epoch",
    "trainer.val_check_interval",
    "trainer.limit_val_batches",
)


class RunSummary(L.Callback):
    """At the end of fit, say where the wall time went and how much was trained; writes ``run_summary.json``.

    On small data sets a full validation can cost more than the epoch it follows, so most of a time
    budget validates while the log shows only training; this makes that split visible. The fit's wall
    time (``on_fit_start`` to ``on_fit_end``) is split into

    - ``training``: ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, optimizer);
    - ``validation``: ``on_validation_start`` to ``on_validation_end`` during fit, less its data wait;
    - ``data``: waiting for the next batch. Lightning fetches a batch before ``on_train_batch_start``,
      so the gap since the previous batch's end (or the epoch's start) is data loading; the same for
      validation batches (from ``on_validation_epoch_start``). A gap with a validation or a checkpoint
      in it is not counted (it lands in ``other``), so this part is never inflated;
    - ``other``: the rest (checkpoints, the sanity check, epoch hooks, set-up), so the parts add up to
      the total exactly.

    The totals travel in checkpoints (:meth:`state_dict`), so a resumed run's summary covers the whole
    run (less the time between its last checkpoint and the interruption). Only rank 0 writes.
    """

    def __init__(self, path: str, validation_share_warning: float = 0.25) -> None:
        self.path = Path(path)
        self.validation_share_warning = validation_share_warning
        self.totals: dict[str, float] = dict.fromkeys(
            ("total_s", "training_s", "validation_s", "data_s", "sanity_check_s"), 0.0
        )
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "training_batches",
                "training_samples",
                "validations",
                "validation_batches",
                "validation_samples",
                "fits",
            ),
            0,
        )
        self._fit_start: float | None = None
        self._batch_start: float | None = None  # the open training batch
        self._gap_start: float | None = None  # where the wait for the next batch began; None: not measured
        self._validation_start: float | None = None
        self._validation_data = 0.0  # data wait inside the open validation
        self._sanity_start: float | None = None

    # -- time -------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall time of the whole run so far, earlier (resumed-from) fits included."""
        if self._fit_start is None:
            return self.totals["total_s"]
        return self.totals["total_s"] + time.perf_counter() - self._fit_start

    def _data_wait(self) -> float:
        """Seconds since the gap began (0 when it was not a pure wait for data); closes the gap."""
        waited = 0.0 if self._gap_start is None else time.perf_counter() - self._gap_start
        self._gap_start = None
        self.totals["data_s"] += waited
        return waited

    @staticmethod
    def _measures(trainer: L.Trainer) -> bool:
        """Validation hooks count only for fit's own validations (not the sanity check, not ``validate``)."""
        return trainer.state.fn == "fit" and not trainer.sanity_checking

    # -- hooks ------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self.counts["fits"] += 1

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sanity_start = time.perf_counter()

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._sanity_start is not None:
            self.totals["sanity_check_s"] += time.perf_counter() - self._sanity_start
            self._sanity_start = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._gap_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._data_wait()
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._batch_start is not None:
            self.totals["training_s"] += now - self._batch_start
        self._batch_start = None
        self.counts["training_batches"] += 1
        # every process trains on its own batch: the samples of a step are the batch times the processes
        self.counts["training_samples"] += batch_length(batch) * trainer.world_size
        self._gap_start = now

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measures(trainer):
            self._gap_start = None  # the training gap around a validation is not a wait for data
            self._validation_start = time.perf_counter()
            self._validation_data = 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measures(trainer):
            self._gap_start = time.perf_counter()

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._measures(trainer):
            self._validation_data += self._data_wait()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._measures(trainer):
            self.counts["validation_batches"] += 1
            self.counts["validation_samples"] += batch_length(batch) * trainer.world_size
            self._gap_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measures(trainer) or self._validation_start is None:
            return
        self.totals["validation_s"] += time.perf_counter() - self._validation_start - self._validation_data
        self._validation_start = None
        self._gap_start = None
        self.counts["validations"] += 1

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._gap_start = None  # a gap with a checkpoint in it is not a pure wait for data

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.totals["total_s"], self._fit_start = self.elapsed(), None  # the run's time stops here
        stopper = trainer.early_stopping_callback
        summary = self.summary(
            optimizer_steps=trainer.global_step,
            epochs=trainer.current_epoch,
            stopped_early_at_epoch=(stopper.stopped_epoch or None) if stopper is not None else None,
        )
        if trainer.is_global_zero:
            write_json(self.path, summary)
            level = logging.WARNING if summary["validation_heavy"] else logging.INFO
            log.log(level, "%s (%s)", summary["text"], self.path)

    # -- the summary --------------------------------------------------------------------------------

    def summary(
        self, optimizer_steps: int, epochs: int, stopped_early_at_epoch: int | None = None
    ) -> dict[str, Any]:
        """The split of the wall time, the counts, and the one-paragraph text of both (and of an early stop:
        ``callbacks=early_stopping``)."""
        total = round(self.elapsed(), 6)
        parts = {key: round(self.totals[f"{key}_s"], 6) for key in ("training", "validation", "data")}
        parts["other"] = total - sum(parts.values())
        shares = {key: round(value / total, 4) if total > 0 else 0.0 for key, value in parts.items()}
        heavy = shares["validation"] > self.validation_share_warning
        text = (
            f"{format_duration(total)}: "
            + ", ".join(f"{key} {100 * share:.0f} %" for key, share in shares.items())
            + f"; {optimizer_steps:,} optimizer steps, {self.counts['training_samples']:,} training samples, "
            f"{self.counts['validations']:,} validations"
        )
        if stopped_early_at_epoch is not None:
            text += f"; stopped early at epoch {stopped_early_at_epoch} (callbacks.early_stopping)"
        if heavy:
            text += (
                f". Validation took {100 * shares['validation']:.0f} % of the run (over "
                f"{100 * self.validation_share_warning:.0f} %): validate less often or on fewer batches with "
                + ", ".join(VALIDATION_KEYS)
            )
        return {
            "total_s": total,
            "parts_s": parts,
            "shares": shares,
            "sanity_check_s": round(self.totals["sanity_check_s"], 6),
            "optimizer_steps": optimizer_steps,
            "epochs": epochs,
            **self.counts,
            "validation_heavy": heavy,
            "stopped_early_at_epoch": stopped_early_at_epoch,
            "text": text,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"totals": {**self.totals, "total_s": self.elapsed()}, "counts": dict(self.counts)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.totals.update(state_dict.get("totals", {}))
        self.counts.update(state_dict.get("counts", {}))
        if self._fit_start is not None:  # restored after on_fit_start (some strategies): count this fit too
            self.counts["fits"] += 1
