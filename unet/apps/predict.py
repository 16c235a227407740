"""``unet-predict model=<.ckpt|.onnx|.pt> input=<image, folder or glob> output=<dir>``: segment new images.

Keys: ``configs/deploy/predict.yaml``; see :func:`unet.inference.predict_files`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.inference import load_predictor, predict_files
from unet.inference.files import collect_inputs


@hydra.main(version_base="1.3", config_path=DEPLOY_CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-predict``."""
    with user_errors_exit():
        summary = predict_files(
            load_predictor(cfg.model, cfg.device),
            collect_inputs(str(cfg.input)),
            cfg.output,
            tile_size=cfg.tile_size,
            overlap=cfg.overlap,
            tta=cfg.tta,
            save_probabilities=cfg.save_probabilities,
            batch_size=cfg.batch_size,
        )
        print(
            f"segmented {summary['images']} image(s) in {summary['seconds']:.1f} s "
            f"({summary['images_per_s']:.2f} images/s) into {cfg.output}"
        )


if __name__ == "__main__":
    main()
