"""Self-configuring runs: a training plan from the data fingerprint, the device and the budget.

:mod:`unet.planning.rules` decides (pure, testable), :mod:`unet.planning.speed` measures this machine,
:mod:`unet.planning.configure` applies a plan to a composed config, :mod:`unet.planning.data_check`
checks the data against the configured run before training.
"""

from unet.planning.configure import (
    PLAN_FILE,
    format_plan,
    needs_plan,
    plan_config,
    plan_overrides,
    reading_datamodule,
    without_plan,
    write_plan,
)
from unet.planning.data_check import check_data_from_config
from unet.planning.rules import AUTO, PLANNED_KEYS, Choice, Plan, PlanInputs, make_plan

__all__ = [
    "AUTO",
    "PLANNED_KEYS",
    "PLAN_FILE",
    "Choice",
    "check_data_from_config",
    "Plan",
    "PlanInputs",
    "format_plan",
    "make_plan",
    "needs_plan",
    "plan_config",
    "plan_overrides",
    "reading_datamodule",
    "without_plan",
    "write_plan",
]
