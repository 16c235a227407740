"""``unet-predict ckpt_path=<.ckpt|.onnx|.pt> input=<image, folder or glob> output=<dir>``: segment new images.

Keys: ``configs/predict.yaml``; see :func:`unet.api.deploy.predict_from_config`
(:func:`unet.inference.predict_files`).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from unet.apps.errors import report_and_exit
from unet.apps.hydra_app import hydra_app
from unet.utils.config_checks import check_paths_exist
from unet.utils.runtime import apply_runtime


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-predict``."""
    check_paths_exist(cfg, "ckpt_path", "input")
    apply_runtime(cfg.runtime)
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
