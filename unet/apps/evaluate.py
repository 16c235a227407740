"""``unet-eval``: score a checkpoint (``configs/eval.yaml``); see :mod:`unet.training.evaluate`."""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.config_checks import check_paths_exist
from unet.utils.runtime import apply_runtime
from unet.utils.tables import terminal_tables


@hydra_app("eval")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-eval``."""
    check_paths_exist(cfg, "ckpt_path")
    from unet.training.evaluate import evaluate  # loads torch and Lightning: after the config's checks

    apply_runtime(cfg.runtime)
    with terminal_tables():  # rich tables on a terminal, plain text in a pipe or log
        evaluate(cfg)


if __name__ == "__main__":
    main()
