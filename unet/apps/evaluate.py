"""``unet-eval``: score a checkpoint (``configs/eval.yaml``); see :mod:`unet.training.evaluate`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unet.apps import CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.training.evaluate import evaluate
from unet.utils.runtime import apply_runtime


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-eval``."""
    with user_errors_exit():
        apply_runtime(cfg.runtime)
        evaluate(cfg)


if __name__ == "__main__":
    main()
