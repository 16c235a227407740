"""Experiment trackers beside TensorBoard: MLflow and Weights & Biases, built from ``configs/logger/``.

Their packages are an optional extra (``pip install "unet[tracking]"``) imported only by a run that
selects them; without it, ``logger=mlflow`` is refused in one line naming the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from unet.utils.extras import MissingExtraError, install_hint

if TYPE_CHECKING:
    from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

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
    from lightning.pytorch.loggers import MLFlowLogger

    served = urlparse(tracking_uri).scheme in SERVER_SCHEMES
    return MLFlowLogger(
        tracking_uri=tracking_uri, artifact_location=None if served else artifact_location, **options
    )


def wandb_logger(**options: Any) -> WandbLogger:
    """Lightning's ``WandbLogger``, logging to a W&B run of its own: the jobs of a sweep share one process,
    and Lightning would log into the run an earlier job left open, so that one is finished first."""
    require("wandb", "wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    if wandb.run is not None:
        wandb.finish()
    return WandbLogger(**options)
