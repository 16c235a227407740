"""A training run from a composed config (what ``unet-train`` runs): build, fit, score, write the outputs.

The config's ``auto`` keys are planned first (:mod:`unet.planning`: the config is composed again with
the plan's overrides). The run directory receives ``config.yaml`` (resolved, planned values included),
``plan.json`` (what was planned and why), ``checkpoints/best.ckpt`` and
``checkpoints/last.ckpt`` (the latest state: every epoch's end, SIGTERM and Ctrl-C), TensorBoard logs under
``tensorboard/<network name>/`` (``logger=mlflow``: ``mlflow.db``, ``mlartifacts/``), ``per_image.csv`` (every val and test image's own scores, from the
weights ``metrics.json`` scores: :mod:`unet.evaluation.per_image`) and, last, ``metrics.json``. While it runs, ``run.lock`` names the process
writing the directory (:mod:`unet.utils.locking`): one run directory, one writer. A run refused for
the user's config or data before its first checkpoint removes what it wrote there.
"""

from __future__ import annotations

import logging
import os
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, RichModelSummary
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from unet.data.base import SegmentationDataModule
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE
from unet.evaluation.per_image import write_per_image
from unet.models.loading import load_checkpoint
from unet.models.networks import network_name
from unet.models.sizing import count_parameters
from unet.planning import Plan, format_plan, planned_config, write_plan
from unet.planning.speed import forget_measurements
from unet.training.callbacks import (
    ConfiguredOptimization,
    EpochEndResume,
    FiniteCheckpoints,
    ParameterSummary,
    Requeued,
    RunSummary,
    StoppedBySigint,
)
from unet.training.checkpoint import check_fits_data, check_resume_changes, check_same_network
from unet.training.losses import resolve_class_weights
from unet.training.module import SegmentationModule
from unet.training.run_config import StoreRunConfig
from unet.utils.budget import max_time_timedelta
from unet.utils.config import flatten, plain_config
from unet.utils.errors import ConfigError, InputNotFoundError, OutputExistsError, TrainingDivergedError
from unet.utils.files import removed_if_refused, write_json, write_text
from unet.utils.locking import DirectoryLockedError, check_unlocked, lock_directory

log = logging.getLogger(__name__)


class _DropLitLoggerTip(logging.Filter):
    """Lightning advertises its cloud logger at every Trainer creation; nothing in a run can act on it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_lightning_notices() -> None:
    """Silence Lightning's messages that mislead in our runs (each says why it does not apply)."""
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in rank_zero_log.filters):
        rank_zero_log.addFilter(_DropLitLoggerTip())
    # Lightning 2.6's own use of torch's LeafSpec, deprecated by torch; no setting of ours touches it.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*is deprecated")
    # Mixed precision keeps the weights in float32, so the 32 bits the summary falls back to are right.
    warnings.filterwarnings("ignore", message=r".*-mixed is not supported by the model summary")


def build_datamodule(data_cfg: DictConfig) -> SegmentationDataModule:
    return instantiate(data_cfg)


def build_module(model_cfg: DictConfig, datamodule: SegmentationDataModule) -> SegmentationModule:
    """The Lightning module, with the data-dependent sizes (and class weights) taken from the datamodule."""
    return instantiate(
        model_cfg,
        loss=resolve_class_weights(model_cfg.get("loss"), datamodule),
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
        ignore_index=datamodule.ignore_index,
        mean=list(datamodule.mean),
        std=list(datamodule.std),
        input_scale=datamodule.train_scale,
        _recursive_=False,
    )


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> L.Trainer:
    """The Trainer of ``cfg.trainer``, its callbacks and loggers; ``trainer.max_time`` read in seconds by
    :func:`~unet.utils.budget.max_time_seconds`, given to Lightning as a ``timedelta``."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # trainer.enable_progress_bar=false drops ours
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    quiet_lightning_notices()
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks + list(extra_callbacks),
        logger=loggers or False,
        max_time=max_time_timedelta(cfg.trainer.get("max_time")),
    )
    # Lightning's own summary has a FLOPs column that reads 0 without an example input (see ParameterSummary).
    trainer.callbacks = [
        ParameterSummary(max_depth=c._max_depth) if type(c) in (ModelSummary, RichModelSummary) else c
        for c in trainer.callbacks
    ]
    return trainer


def run_summary(trainer: L.Trainer) -> RunSummary | None:
    """The trainer's :class:`RunSummary` callback, if it has one (``callbacks.run_summary``)."""
    return next((c for c in trainer.callbacks if isinstance(c, RunSummary)), None)


def give_summary_the_plan(trainer: L.Trainer, plan: Plan | None) -> None:
    """Give the run summary the plan's validation share, pass time and step time, which it holds the run's to."""
    facts = {} if plan is None else plan.facts
    summary = run_summary(trainer)
    if summary is None or facts.get("validation_share") is None or facts.get("validation_s") is None:
        return
    summary.plan_validation(facts["validation_share"], facts["validation_s"], facts.get("step_s"))


def forget_speed_off_plan(trainer: L.Trainer, plan: Plan | None, cache_dir: str | None) -> None:
    """When the run's steps went over 1.5x faster than its plan's (the run summary says so), drop this
    machine's cached speed: it was measured under more load, and would plan the next runs alike."""
    summary = run_summary(trainer)
    if plan is None or summary is None or (summary.last_summary or {}).get("step_off_plan") != "faster":
        return
    removed = forget_measurements(cache_dir, plan.facts.get("device", ""))
    if removed:
        log.warning(
            "dropped %d cached speed measurement(s) of %s in %s", removed, plan.facts["device"], cache_dir
        )


def keep_final_weights_if_best(
    trainer: L.Trainer, module: SegmentationModule, datamodule: SegmentationDataModule
) -> None:
    """Validate the final weights and make them ``best.ckpt`` when they score better than it.

    A run ended by its time budget stops between validations, after the learning rate has annealed:
    its last steps are often its best, and sparse validation would otherwise never score them. They
    are scored on the images every validation of the fit scored (``data.val_subset``), as ``best.ckpt``'s
    score was.
    """
    checkpoint = trainer.checkpoint_callback
    if (
        not isinstance(checkpoint, ModelCheckpoint)
        or checkpoint.monitor is None
        or checkpoint.dirpath is None
    ):
        return
    if trainer.fast_dev_run:  # a dry run writes nothing
        return
    scores = trainer.validate(module, dataloaders=datamodule.dataloader("val", subset=True), verbose=False)
    final = scores[0].get(checkpoint.monitor) if scores else None
    best = checkpoint.best_model_score if checkpoint.best_model_path else None
    if final is None or (best is not None and not _better(float(final), float(best), checkpoint.mode)):
        return
    # A run that never validated (a budget shorter than one validation cadence) gets its best.ckpt here.
    path = checkpoint.best_model_path or str(
        Path(checkpoint.dirpath) / f"{checkpoint.filename or 'best'}.ckpt"
    )
    with counted_in_last_epoch(trainer):
        trainer.save_checkpoint(path, weights_only=False)
    checkpoint.best_model_path, checkpoint.best_model_score = path, torch.tensor(float(final))
    log.info(
        "the final weights score %s %.4f (best so far %s): saved as %s", checkpoint.monitor, final, best, path
    )


@contextmanager
def counted_in_last_epoch(trainer: L.Trainer) -> Iterator[None]:
    """While inside, the trainer's epoch is the one the final weights were trained in.

    After fitting, Lightning counts the last epoch as completed (``current_epoch`` is one past it), so a
    checkpoint written then would record another epoch than ``last.ckpt`` of the same step; its loops'
    state is then ``last.ckpt``'s too (an epoch's end), and it resumes the same way.
    """
    progress = trainer.fit_loop.epoch_progress
    finished = progress.current.completed > 0 and progress.current.completed == progress.current.processed
    if finished:
        progress.current.completed -= 1
        progress.total.completed -= 1
    try:
        yield
    finally:
        if finished:
            progress.current.completed += 1
            progress.total.completed += 1


def _better(score: float, reference: float, mode: str) -> bool:
    return score > reference if mode == "max" else score < reference


def final_metrics(
    trainer: L.Trainer, module: SegmentationModule, datamodule: SegmentationDataModule, run_test: bool
) -> dict[str, float]:
    """Validation (and test) scores of the best checkpoint (the final weights competing), or of the
    final weights without one, on every image of each split (validations during the fit may score a
    subset, ``data.val_subset``); each image's own scores are left in ``module.per_image_rows``.

    ``val_images`` counts the validation images scored here, ``val_subset_images`` those each
    validation during the fit scored (and chose ``best.ckpt`` by).
    """
    keep_final_weights_if_best(trainer, module, datamodule)
    module.record_per_image()
    checkpoint = trainer.checkpoint_callback
    # The path itself: "best" would make Lightning warn that last.ckpt's callback is a checkpoint callback too.
    ckpt_path = getattr(checkpoint, "best_model_path", "") or None
    metrics: dict[str, float] = {}
    for result in trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False):
        metrics.update(result)
    if run_test and datamodule.has_test:
        for result in trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False):
            metrics.update(result)
    metrics = {key: float(value) for key, value in sorted(metrics.items())}
    subset = datamodule.val_subset_indices()
    metrics["val_images"] = len(datamodule.dataset("val"))
    metrics["val_subset_images"] = metrics["val_images"] if subset is None else len(subset)
    metrics["epochs"] = trainer.current_epoch
    metrics["global_step"] = trainer.global_step
    return metrics


def run_params(config: dict[str, Any]) -> dict[str, Any]:
    """The run's hyper-parameters for its loggers: the config flattened (``model.upsample``), without
    where the run was written."""
    return {key: value for key, value in flatten(config).items() if not key.startswith(("paths.", "hydra."))}


def log_params(trainer: L.Trainer, params: dict[str, Any]) -> None:
    """Give every logger the hyper-parameters before training, so a tracker lists a running (or failed)
    run by its settings too."""
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def log_final_metrics(trainer: L.Trainer, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Give every logger the final metrics (``metrics.json``'s): TensorBoard with the hyper-parameters in
    its HParams tab (``hparams/<metric>``), the others (MLflow, W&B, CSV) as metrics at the last step,
    so a tracker's run table shows the best checkpoint's scores."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(
                params, metrics={f"hparams/{key}": value for key, value in metrics.items()}
            )
        else:
            logger.log_metrics(metrics, step=trainer.global_step)
        logger.finalize("success")


def requeued_checkpoint(output_dir: Path) -> str | None:
    """A requeued SLURM job (``SLURM_RESTART_COUNT`` set by SLURM) resumes its run from the ``last.ckpt``
    it saved in place (see :class:`~unet.training.callbacks.LastCheckpoint`); ``None`` otherwise."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1 or not last.is_file():
        return None
    log.warning("requeued SLURM job %s: resuming from %s", os.environ.get("SLURM_JOB_ID"), last)
    return str(last)


def resolve_checkpoint(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``last`` -> this run directory's ``checkpoints/last.ckpt``; a run directory -> its ``last.ckpt``;
    none in a requeued SLURM job -> its ``last.ckpt`` when it saved one."""
    if ckpt_path is None:
        return requeued_checkpoint(output_dir)
    path = output_dir if ckpt_path == "last" else Path(ckpt_path)
    if path.is_dir():
        return str(last_checkpoint_in(path, ckpt_path))
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint to resume from not found: {path} (from ckpt_path={ckpt_path})")
    return str(path)


def last_checkpoint_in(directory: Path, ckpt_path: str) -> Path:
    """The ``last.ckpt`` to resume a run directory from: its ``checkpoints/last.ckpt`` (or the file in
    ``directory``, given the checkpoints folder itself)."""
    looked_at = directory / "checkpoints" / "last.ckpt"
    for path in (looked_at, directory / "last.ckpt"):
        if path.is_file():
            return path
    raise InputNotFoundError(
        f"ckpt_path={ckpt_path}: {looked_at} does not exist: that run never wrote a checkpoint to resume "
        "from (it stopped before its first epoch ended); start it again without ckpt_path"
    )


def refuse_to_overwrite(output_dir: Path, resume_from: str | None) -> None:
    """Stop before a new run writes over an earlier run's checkpoints or metrics in the same directory.

    Resuming a run in its own directory (``ckpt_path`` inside it) is allowed.
    """
    earlier = [
        p
        for p in (output_dir / "metrics.json", output_dir / PER_IMAGE_FILE, output_dir / "checkpoints")
        if p.exists()
    ]
    if not earlier:
        return
    if resume_from and Path(resume_from).resolve().is_relative_to(output_dir.resolve()):
        return
    raise OutputExistsError(
        f"{output_dir} already holds the outputs of an earlier run ({', '.join(p.name for p in earlier)}); "
        "choose a new hydra.run.dir, or resume that run with ckpt_path pointing into it"
    )


def check_run_directory(output_dir: Path, ckpt_path: str | None) -> None:
    """Refuse a run into a directory another live run holds, or one holding an earlier run's outputs
    (unless resuming that run), before anything is written there."""
    check_unlocked(output_dir)
    refuse_to_overwrite(output_dir, resolve_checkpoint(ckpt_path, output_dir))


def check_launchable(trainer: L.Trainer) -> None:
    """Refuse a local sweep of DDP runs: Lightning would start each run's processes by re-running the
    whole command, sweep included. Launchers that start the processes themselves (SLURM's ``srun``,
    ``torchrun``) and ``ddp_spawn`` are fine."""
    launcher = trainer.strategy.launcher
    if (
        HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
        and isinstance(launcher, _SubprocessScriptLauncher)
        and not launcher.cluster_environment.creates_processes_externally
    ):
        raise ConfigError(
            "a local sweep (-m) cannot start DDP processes per run; use hydra/launcher=slurm, "
            "or trainer.strategy=ddp_spawn"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as configured; returns the final metrics (also written to ``metrics.json``).

    The run directory is locked for this process while it trains (in a distributed run by the first
    process only; the others join its run): a second run into it fails at once, naming this one.
    """
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), output_dir)
    if rank_zero_only.rank != 0:
        return _train(cfg, output_dir, ckpt_path)
    with lock_directory(output_dir):
        refuse_to_overwrite(output_dir, ckpt_path)
        # Refused for its config or data before its first checkpoint: what it wrote goes (the log stays).
        # A run that diverged keeps its logs: they show how.
        with removed_if_refused(output_dir, kept_once="checkpoints", spared=(TrainingDivergedError,)):
            return _train(cfg, output_dir, ckpt_path)


def write_run_config(output_dir: Path, config: dict[str, Any], plan: Plan | None) -> None:
    """``config.yaml`` and ``plan.json`` of the run; in a distributed run only the first process writes
    (the others join its run)."""
    if rank_zero_only.rank != 0:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / "config.yaml", OmegaConf.to_yaml(config))
    if plan is not None:
        write_plan(plan, output_dir)
        log.info("%s", format_plan(plan))


def resume_callbacks(
    checkpoint: dict[str, Any], config: dict[str, Any], ckpt_path: str, policy: str
) -> list[L.Callback]:
    """The settings changed since the checkpoint refused, or (``resume_changes=apply``) applied: a changed
    loss is the config's as built; a changed optimizer, schedule or run length needs
    :class:`~unet.training.callbacks.ConfiguredOptimization`, which this returns then."""
    changes = check_resume_changes(checkpoint, config, ckpt_path, policy)
    if not changes:
        return []
    log.warning(
        "resuming with changed settings (resume_changes=apply): %s",
        "; ".join(f"{key} {old} -> {new}" for key, (old, new) in changes.items()),
    )
    if all(key.startswith("model.loss.") for key in changes):
        return []
    log.warning("the learning-rate schedule starts again at step %s", checkpoint.get("global_step"))
    return [ConfiguredOptimization()]


def _train(cfg: DictConfig, output_dir: Path, ckpt_path: str | None) -> dict[str, float]:
    cfg, plan = planned_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    config = plain_config(cfg)
    if ckpt_path is None:  # first, so a run that fails while building records what it was
        write_run_config(output_dir, config, plan)
    datamodule = build_datamodule(cfg.data)
    # A checkpoint to resume from is checked before the config is written (a refused resume in place
    # leaves its run's config.yaml as it was): intact, finite, one of ours, fitting data and network.
    resumed = None if ckpt_path is None else load_checkpoint(ckpt_path)
    if resumed is not None:
        check_fits_data(resumed["hyper_parameters"], datamodule, ckpt_path)
    module = build_module(cfg.model, datamodule)
    callbacks = [StoreRunConfig(config), FiniteCheckpoints(), EpochEndResume()]
    if resumed is not None:
        check_same_network(resumed, module, ckpt_path)
        callbacks += resume_callbacks(resumed, config, ckpt_path, cfg.get("resume_changes", "refuse"))
        del resumed
        write_run_config(output_dir, config, plan)
    trainer = build_trainer(cfg, callbacks)
    check_launchable(trainer)
    give_summary_the_plan(trainer, plan)
    params = run_params(config)
    log_params(trainer, params)
    log.info(
        "training %s (%s parameters) in %s",
        network_name(module.network_config),
        f"{count_parameters(module):,}",
        output_dir,
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        log.warning("stopped by SIGTERM; resume with ckpt_path=%s", output_dir)
        raise
    except StoppedBySigint:
        log.warning("stopped by Ctrl-C (SIGINT); resume with ckpt_path=%s", output_dir)
        raise
    except Requeued:
        log.warning("stopped for the requeued SLURM job, which resumes in %s", output_dir)
        raise

    if trainer.is_global_zero:
        forget_speed_off_plan(trainer, plan, cfg.get("paths", {}).get("cache_dir"))
    metrics = final_metrics(trainer, module, datamodule, run_test=cfg.get("test", True))
    if trainer.is_global_zero:
        # Before metrics.json, which marks a finished run. A resumed run rewrites both (same weights).
        rows = [row for split in ("val", "test") for row in module.per_image_rows.get(split, [])]
        write_per_image(output_dir / PER_IMAGE_FILE, rows, module.class_names, replace=ckpt_path is not None)
        write_json(output_dir / "metrics.json", metrics)
        log_final_metrics(trainer, params, metrics)
        log.info("metrics written to %s", output_dir / "metrics.json")
    return metrics


def train_or_record_failure(cfg: DictConfig) -> dict[str, float] | None:
    """``train``, but an error is written to ``error.json`` in the run directory instead of raised.

    Used by sweeps (``record_failures=true``) so one failed run shows up as failed in a report
    instead of stopping the runs after it.
    """
    try:
        return train(cfg)
    except DirectoryLockedError as error:  # the directory is another run's: write nothing into it
        log.error("run not started: %s", error)
        return None
    except Exception as error:  # noqa: BLE001 -- every failure is recorded, none is hidden
        write_json(
            Path(cfg.paths.output_dir) / "error.json",
            {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()},
        )
        log.error("run failed, recorded in %s: %s", Path(cfg.paths.output_dir) / "error.json", error)
        return None
