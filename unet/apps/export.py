"""``unet-export ckpt_path=... format=onnx|torchscript|weights [output=...]``: ship a trained model.

Keys: ``configs/deploy/export.yaml``; see :func:`unet.export.export_checkpoint`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.export import export_checkpoint


@hydra.main(version_base="1.3", config_path=DEPLOY_CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-export``."""
    with user_errors_exit():
        path, sidecar = export_checkpoint(cfg.ckpt_path, cfg.format, cfg.output, cfg.tolerance)
        print(f"wrote {path} and {sidecar}")


if __name__ == "__main__":
    main()
