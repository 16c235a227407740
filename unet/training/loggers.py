"""The run's loggers: MLflow and Weights & Biases built from ``configs/logger/`` beside TensorBoard and CSV,
and how each kind of logger shows an image (:data:`IMAGE_WRITERS`).

The trackers' packages are an optional extra (``pip install "unet[tracking]"``) imported only by a run
that selects them; without it, ``logger=mlflow`` is refused in one line naming the extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from PIL import Image

from unet.utils.extras import MissingExtraError, install_hint

# Tracking URIs of a server, which keeps its runs' artifacts itself (a path would be this machine's).
SERVER_SCHEMES = ("http", "https", "databricks")


def require(package: str, option: str) -> None:
    """Refuse ``logger=<option>`` in one line when ``package`` cannot be imported."""
    try:
        importlib.import_module(package)
    except ImportError as error:
        raise MissingExtraError(
            f"logger={option} needs {package}, which cannot be imported ({error}): {install_hint('tracking')}"
        ) from error


def mlflow_logger(tracking_uri: str, artifact_location: str | None = None, **options: Any) -> MLFlowLogger:
    """Lightning's ``MLFlowLogger``. ``artifact_location`` (where a new experiment keeps its runs' files)
    applies to a local store only: a server chooses its own."""
    require("mlflow", "mlflow")
    served = urlparse(tracking_uri).scheme in SERVER_SCHEMES
    return MLFlowLogger(
        tracking_uri=tracking_uri, artifact_location=None if served else artifact_location, **options
    )


def wandb_logger(**options: Any) -> WandbLogger:
    """Lightning's ``WandbLogger``, logging to a W&B run of its own: the jobs of a sweep share one process,
    and Lightning would log into the run an earlier job left open, so that one is finished first."""
    require("wandb", "wandb")
    import wandb

    if wandb.run is not None:
        wandb.finish()
    return WandbLogger(**options)


# -- images -----------------------------------------------------------------------------------------


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
