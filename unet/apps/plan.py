"""``unet-plan``: print the training plan of a unet-train config (``configs/plan.yaml``); see :mod:`unet.planning`."""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.runtime import apply_runtime


def print_plan(cfg: DictConfig) -> None:
    """Plan ``cfg`` (a composed unet-train config) and print the plan."""
    from unet.planning import format_plan, plan_config  # loads torch: after the config's checks

    plan = plan_config(cfg)
    print(format_plan(plan) if plan else "nothing to plan: no key of this config is `auto`")


@hydra_app("plan")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-plan``."""
    apply_runtime(cfg.runtime)
    print_plan(cfg)


if __name__ == "__main__":
    main()
