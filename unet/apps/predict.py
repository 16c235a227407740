"""``unet-predict model=<.ckpt|.onnx|.pt> input=<image, folder or glob> output=<dir>``: segment new images.

Keys: ``configs/deploy/predict.yaml``; see :func:`unet.inference.predict_files`.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.errors import report_and_exit
from unet.apps.hydra_app import hydra_app
from unet.inference import load_predictor, predict_files
from unet.inference.files import collect_inputs


@hydra_app("predict", DEPLOY_CONFIG_PATH)
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-predict``."""
    summary = predict_files(
        load_predictor(cfg.model, cfg.device, cfg.memory_format),
        collect_inputs(str(cfg.input)),
        cfg.output,
        tile_size=cfg.tile_size,
        overlap=cfg.overlap,
        tta=cfg.tta,
        save_probabilities=cfg.save_probabilities,
        batch_size=cfg.batch_size,
        skip_errors=cfg.skip_errors,
    )
    print(
        f"segmented {summary['images']} image(s) in {summary['seconds']:.1f} s "
        f"({summary['images_per_s']:.2f} images/s, {summary['megapixels_per_s']:.2f} megapixels/s; "
        f"peak memory {summary['peak_memory_mb']:,.0f} MB) into {cfg.output}"
    )
    failed = summary["failed"]
    if failed:
        for failure in failed:
            print(f"failed: {failure['file']}: {failure['error']}", file=sys.stderr)
        report_and_exit(f"{len(failed)} of {len(failed) + summary['images']} input(s) failed (listed above)")


if __name__ == "__main__":
    main()
