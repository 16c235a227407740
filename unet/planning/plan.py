"""A training plan: each planned key's value and reason, the numbers behind them, and how a run gets them.

A run gets its plan as Hydra overrides (:meth:`Plan.overrides`), appended to the overrides its config
was composed with: composing again puts the planned values where the ``auto`` ones were, and Hydra
itself loads the planned augmentation preset (the ``data/augment`` group). ``plan.json`` in the run
directory records the plan, ``unet-plan`` prints it (:func:`format_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unet.utils.config import override_value
from unet.utils.files import write_json
from unet.utils.tables import text_table

# The config value that leaves a key to the plan.
AUTO = "auto"
PLAN_FILE = "plan.json"
# The key naming the augmentation preset, and the config group it selects.
AUGMENT_KIND = "augment.kind"
AUGMENT_GROUP = "data/augment"
TYPED_REASON = "set in the config or on the command line"


@dataclass(frozen=True)
class Choice:
    """One config key's value and why; ``planned`` is False for a value the config fixed."""

    key: str
    value: Any
    reason: str
    planned: bool


@dataclass
class Plan:
    """Every plannable key present in the config, with its value and reason, and the numbers behind them."""

    choices: dict[str, Choice] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str, default: Any = None) -> Any:
        choice = self.choices.get(key)
        return default if choice is None else choice.value

    def planned(self) -> dict[str, Any]:
        """The values the planner decided (the ``auto`` keys), by dotted key."""
        return {key: c.value for key, c in self.choices.items() if c.planned}

    def overrides(self) -> list[str]:
        """The plan as Hydra overrides: ``key=value`` for every planned key, and the augmentation preset
        (planned or typed, whenever the config left its transforms to the plan) as the group override
        ``data/augment=<kind>``, which a typed ``augment.crop`` still overrides."""
        overrides = []
        for key, choice in self.choices.items():
            if key == AUGMENT_KIND:
                overrides.append(f"{AUGMENT_GROUP}={choice.value}")
            elif choice.planned:
                overrides.append(f"{key}={override_value(choice.value)}")
        return overrides

    def replaced_keys(self) -> tuple[str, ...]:
        """Keys whose own overrides :meth:`overrides` replaces: a typed ``augment.kind`` becomes the group
        override ``data/augment=<kind>`` (no preset has a ``kind`` of its own to take the typed value)."""
        return (AUGMENT_KIND,) if AUGMENT_KIND in self.choices else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": [
                {"key": c.key, "value": c.value, "planned": c.planned, "reason": c.reason}
                for c in self.choices.values()
            ],
            "facts": self.facts,
        }


def write_plan(plan: Plan, output_dir: str | Path) -> Path:
    """``plan.json`` in the run directory."""
    path = Path(output_dir) / PLAN_FILE
    write_json(path, plan.to_dict())
    return path


def format_plan(plan: Plan) -> str:
    """The plan as a table (key, value, whether planned, why) under a line of the numbers behind it."""
    facts = plan.facts
    budget = facts.get("budget_s")
    head = (
        f"training plan on {facts.get('device')}: "
        + (f"budget {budget:g} s" if budget else f"budget {facts.get('max_epochs')} epochs")
        + f", {facts.get('training_images')} training images of ~{facts.get('image_size')}, "
        f"{facts.get('validation_images')} validation images; ~{facts.get('estimated_steps')} steps of "
        f"{facts.get('step_s')} s, validation ~{facts.get('validation_s')} s every "
        f"{facts.get('steps_between_validations')} steps"
        + (f" ({share:.0%} of the time)" if (share := facts.get("validation_share")) is not None else "")
    )
    records = [
        {
            "key": c.key,
            "value": override_value(c.value),
            "from": "plan" if c.planned else "config",
            "reason": c.reason,
        }
        for c in plan.choices.values()
    ]
    columns = [
        ("key", "key", "{}"),
        ("value", "value", "{}"),
        ("from", "from", "{}"),
        ("why", "reason", "{}"),
    ]
    return "\n".join([head, text_table(columns, records, rule=True, left=(0, 1, 2, 3))])
