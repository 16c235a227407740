"""Callbacks that make runs inspectable and safe to stop, one module each: prediction images
(:mod:`~.prediction_images`), the metrics history (:mod:`~.history`), the run summary
(:mod:`~.run_summary`), the layer summary (:mod:`~.parameter_summary`), per-step seeding
(:mod:`~.seeding`), weights snapshots every N seconds (:mod:`~.snapshots`), ``last.ckpt`` at every
epoch end and signal (:mod:`~.preemption`), no checkpoint of diverged weights
(:mod:`~.finite_checkpoints`) epoch-end checkpoints resumed at the right epoch (:mod:`~.epoch_end_resume`), the config's optimizer
and schedule on resuming with changed settings (:mod:`~.resume_changes`) and early stopping checked after validations
only (:mod:`~.early_stopping`).
"""

from unet.training.callbacks.early_stopping import EarlyStoppingAfterValidation
from unet.training.callbacks.epoch_end_resume import EpochEndResume
from unet.training.callbacks.finite_checkpoints import FiniteCheckpoints
from unet.training.callbacks.history import MetricsHistory
from unet.training.callbacks.parameter_summary import ParameterSummary
from unet.training.callbacks.prediction_images import PredictionImages
from unet.training.callbacks.preemption import LastCheckpoint, Requeued, StoppedBySigint
from unet.training.callbacks.resume_changes import ConfiguredOptimization
from unet.training.callbacks.run_summary import RunSummary
from unet.training.callbacks.seeding import StepSeeding
from unet.training.callbacks.snapshots import TimedSnapshots

__all__ = [
    "ConfiguredOptimization",
    "EarlyStoppingAfterValidation",
    "EpochEndResume",
    "FiniteCheckpoints",
    "LastCheckpoint",
    "MetricsHistory",
    "ParameterSummary",
    "PredictionImages",
    "Requeued",
    "RunSummary",
    "StepSeeding",
    "StoppedBySigint",
    "TimedSnapshots",
]
