"""``unet-check-data data=...``: read every sample, print a summary and refuse what would stop training
(``configs/check_data.yaml``); see :func:`unet.planning.check_data_from_config`."""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.runs import hydra_app
from unet.planning import check_data_from_config


@hydra_app("check_data")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-check-data``."""
    check_data_from_config(cfg)


if __name__ == "__main__":
    main()
