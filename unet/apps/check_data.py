"""``unet-check-data data=...``: read every sample and print a summary (``configs/check_data.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unet.apps import CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.data.inspect import check_data
from unet.planning import reading_datamodule


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="check_data")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-check-data``."""
    with user_errors_exit():
        check_data(reading_datamodule(cfg.data), cfg.paths.output_dir, cfg.paths.cache_dir)


if __name__ == "__main__":
    main()
