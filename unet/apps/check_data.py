"""``unet-check-data data=...``: read every sample, print a summary and refuse what would stop training
(``configs/check_data.yaml``); see :func:`unet.planning.check_data_from_config`."""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.runtime import apply_runtime
from unet.utils.tables import terminal_tables


@hydra_app("check_data")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-check-data``."""
    apply_runtime(cfg.runtime)
    from unet.planning import check_data_from_config  # loads torch: after the config's checks

    with terminal_tables():  # rich tables on a terminal, plain text in a pipe or log
        check_data_from_config(cfg)


if __name__ == "__main__":
    main()
