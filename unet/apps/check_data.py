"""``unet-check-data data=...``: run every data check and print a summary (images, sizes, classes)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from unet.apps import CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.data.inspect import format_summary, summarize_data
from unet.utils.files import write_json

log = logging.getLogger(__name__)


def check_data(cfg: DictConfig) -> dict[str, Any]:
    """Build the data of ``cfg.data``, read every sample, print the summary and write ``data_summary.json``."""
    datamodule = instantiate(cfg.data)
    summary = summarize_data(datamodule)
    print(
        f"\n{type(datamodule).__name__}: {datamodule.num_classes} classes, {datamodule.in_channels} channel(s)"
    )
    print(format_summary(summary, list(datamodule.class_names)))
    print("all samples read and checked\n")
    path = write_json(Path(cfg.paths.output_dir) / "data_summary.json", summary)
    log.info("summary written to %s", path)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="check_data")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-check-data``."""
    with user_errors_exit():
        check_data(cfg)


if __name__ == "__main__":
    main()
