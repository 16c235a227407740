"""Self-configuring runs: a training plan from the data fingerprint, the device and the budget.

:mod:`unet.planning.rules` decides (one pure rule per key), :mod:`unet.planning.plan` is the plan (its
``plan.json``, its overrides, its table), :mod:`unet.planning.speed` measures this machine,
:mod:`unet.planning.configure` plans a composed config and composes it again with the plan,
:mod:`unet.planning.data_check` checks the data against the configured run before training.
"""

from unet.planning.configure import (
    needs_plan,
    plan_config,
    planned_config,
    reading_datamodule,
    without_plan,
)
from unet.planning.data_check import check_data_from_config
from unet.planning.plan import AUTO, PLAN_FILE, Choice, Plan, format_plan, write_plan
from unet.planning.rules import PLANNED_KEYS, RULES, PlanContext, PlanInputs, make_plan, rule

__all__ = [
    "AUTO",
    "PLANNED_KEYS",
    "PLAN_FILE",
    "RULES",
    "Choice",
    "check_data_from_config",
    "Plan",
    "PlanContext",
    "PlanInputs",
    "format_plan",
    "make_plan",
    "needs_plan",
    "plan_config",
    "planned_config",
    "reading_datamodule",
    "rule",
    "without_plan",
    "write_plan",
]
