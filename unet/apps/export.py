"""``unet-export ckpt_path=... format=onnx|pt2|torchscript|weights [output=...]``: ship a trained model.

Keys: ``configs/export.yaml``; see :func:`unet.api.deploy.export_from_config`
(:func:`unet.export.export_checkpoint`).
"""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.config_checks import check_paths_exist
from unet.utils.runtime import apply_runtime


@hydra_app("export")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-export``."""
    check_paths_exist(cfg, "ckpt_path")
    apply_runtime(cfg.runtime)
    from unet.api.deploy import export_from_config  # loads torch: after the config's checks

    path, sidecar = export_from_config(cfg)
    print(f"wrote {path} and {sidecar}")


if __name__ == "__main__":
    main()
