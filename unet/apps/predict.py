"""``unet-predict model=<.ckpt|.onnx|.pt> input=<image, folder or glob> output=<dir>``: segment new images.

Keys: ``configs/deploy/predict.yaml``; see :func:`unet.api.deploy.predict_from_config`
(:func:`unet.inference.predict_files`).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.errors import report_and_exit
from unet.apps.hydra_app import hydra_app
from unet.utils.config_checks import check_paths_exist


@hydra_app("predict", DEPLOY_CONFIG_PATH)
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-predict``."""
    check_paths_exist(cfg, "model", "input")
    from unet.api.deploy import predict_from_config  # loads torch: after the config's checks

    summary = predict_from_config(cfg)
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
