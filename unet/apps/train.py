"""``unet-train``: train a network from the composed config (``configs/train.yaml``); see :mod:`unet.training.run`."""

from __future__ import annotations

import math
import sys

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.runtime import apply_runtime

# What a process ended by SIGTERM conventionally exits with (128 + 15).
SIGTERM_EXIT_CODE = 143


@hydra_app("train")
def main(cfg: DictConfig) -> float:
    """Entry point of ``unet-train``; returns ``val/miou`` for sweepers that optimise it (NaN if it failed).

    torch, Lightning and the training code load here, after the config's checks: ``--help`` and a
    mistake in the config are answered without them.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from unet.training.run import train, train_or_record_failure

    apply_runtime(cfg.runtime)
    try:
        metrics = train_or_record_failure(cfg) if cfg.record_failures else train(cfg)
    except SIGTERMException:
        sys.exit(SIGTERM_EXIT_CODE)
    return math.nan if metrics is None else metrics["val/miou"]


if __name__ == "__main__":
    main()
