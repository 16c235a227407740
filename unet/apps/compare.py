"""``unet-compare``: which decoder upsampling should my U-Net use? Train each method, then report.

All arguments are Hydra overrides of ``configs/compare.yaml``, which is unet-train's config plus
compare's own keys: those go to the comparison, every other one to each run
(:func:`unet.compare.plan.run_overrides`). The work is :func:`unet.compare.run_comparison`.
"""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.runtime import apply_runtime


@hydra_app("compare")
def main(cfg: DictConfig) -> None:
    """Run and report the comparison (``mode=resume`` finishes it, ``mode=report`` only rebuilds its report)."""
    from unet.compare import run_comparison, run_overrides  # loads torch: after the config's checks

    apply_runtime(cfg.runtime)
    overrides = HydraConfig.get().overrides
    command = " ".join(["unet-compare", *sys.argv[1:]])
    run_comparison(cfg, run_overrides(overrides.task, overrides.hydra), command)


if __name__ == "__main__":
    main()
