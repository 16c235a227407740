"""Hydra callbacks for sweeps (configured by ``configs/hydra/sweeper/optuna_miou.yaml``)."""

from __future__ import annotations

import math
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class FailedRunError(RuntimeError):
    """A run of a sweep failed; its directory holds ``error.json``."""


class NanResultIsFailure(Callback):
    """Report a run that returned NaN as a failed job.

    ``unet-train`` returns ``val/miou``, NaN when the run failed and ``record_failures=true`` recorded
    the error. hydra-optuna-sweeper passes a NaN result to Optuna, which refuses it, and the whole
    search stops (hydra issue #2237); a failed job instead becomes a failed trial, and the search
    goes on (within the sweeper's ``max_failure_rate``).
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED:
            return
        value = job_return.return_value
        if isinstance(value, float) and math.isnan(value):
            run_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default="its run directory")
            job_return.status = JobStatus.FAILED
            job_return.return_value = FailedRunError(
                f"the run in {run_dir} failed (it returned NaN); see error.json there"
            )
