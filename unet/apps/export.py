"""``unet-export ckpt_path=... format=onnx|pt2|torchscript|weights [output=...]``: ship a trained model.

Keys: ``configs/deploy/export.yaml``; see :func:`unet.export.export_checkpoint`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.hydra_app import hydra_app
from unet.export import export_checkpoint


@hydra_app("export", DEPLOY_CONFIG_PATH)
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-export``."""
    path, sidecar = export_checkpoint(
        cfg.ckpt_path,
        cfg.format,
        cfg.output,
        cfg.tolerance,
        embed=cfg.embed_preprocessing,
        input_layout=cfg.input_layout,
        outputs=cfg.outputs,
        quantize=cfg.quantize,
    )
    print(f"wrote {path} and {sidecar}")


if __name__ == "__main__":
    main()
