"""``unet-plan``: print the training plan of a unet-train config (``configs/plan.yaml``); see :mod:`unet.planning`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unet.apps import CONFIG_PATH
from unet.apps.runs import user_errors_exit
from unet.planning import format_plan, plan_config


def print_plan(cfg: DictConfig) -> None:
    """Plan ``cfg`` (a composed unet-train config) and print the plan."""
    plan = plan_config(cfg)
    print(format_plan(plan) if plan else "nothing to plan: no key of this config is `auto`")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="plan")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-plan``."""
    with user_errors_exit():
        print_plan(cfg)


if __name__ == "__main__":
    main()
