"""What a comparison trains: its methods, seeds and decoder widths, and the ``unet-train -m`` sweep that runs them.

The plan is written to ``compare.json`` before anything trains, so ``report_only=true`` rebuilds the
report of exactly those runs later, and the command that made them stays on record.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from unet.models import UPSAMPLERS
from unet.models.networks import network_config
from unet.models.sizing import decoder_width_for, parameter_count
from unet.planning import plan_config, plan_overrides, reading_datamodule
from unet.utils.config import plain_config

PLAN_FILE = "compare.json"
# Keys of configs/compare.yaml that are unet-compare's own: every other override goes to each run.
COMPARE_KEYS = ("methods", "seeds", "output_dir", "report_only", "equal_params", "sort_by", "costs")
# Hydra settings of where unet-compare itself runs; the sweep sets its own.
PLACEMENT_KEYS = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.output_subdir")
# The only network equal_params can size (unet.models.sizing builds it).
SIZED_NETWORK = "unet.models.UNet"


def _key(override: str) -> str:
    """The key an override sets: ``+model.net.depth=3`` -> ``model.net.depth``."""
    return override.split("=", 1)[0].lstrip("+~")


def _is_under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in prefixes)


def run_overrides(task_overrides: Sequence[str], hydra_overrides: Sequence[str]) -> list[str]:
    """The overrides every run gets, from unet-compare's own (Hydra's ``overrides.task`` and ``overrides.hydra``).

    That is the user's unet-train overrides, without compare's own keys (:data:`COMPARE_KEYS`), then
    the Hydra choices of how runs are launched (``hydra/launcher=slurm``, ``hydra.launcher.partition=gpu``),
    without those of where unet-compare itself runs (:data:`PLACEMENT_KEYS`).
    """
    train = [o for o in task_overrides if not _is_under(_key(o), COMPARE_KEYS)]
    launch = [o for o in hydra_overrides if not _is_under(_key(o), PLACEMENT_KEYS)]
    return [*train, *launch]


def selected_methods(methods: Sequence[str] | None) -> list[str]:
    """The methods to compare, in the given order without repeats; every registered one for ``None``."""
    if not methods:
        return sorted(UPSAMPLERS)
    unknown = [name for name in methods if name not in UPSAMPLERS]
    if unknown:
        raise ValueError(
            f"unknown upsampling method(s) {unknown}; valid names: {', '.join(sorted(UPSAMPLERS))}"
        )
    return list(dict.fromkeys(methods))


def equal_parameter_widths(methods: Sequence[str], cfg: DictConfig) -> dict[str, float]:
    """Per-method ``decoder_width`` giving every method the parameter count of the largest at width 1.

    Sizes the network of ``cfg.model.net`` (with the data's channels and classes) without its
    ``decoder_width``, which is the per-method value this returns.
    """
    net = plain_config(cfg.model.net)
    if net["_target_"] != SIZED_NETWORK:
        raise ValueError(f"equal_params=true sizes {SIZED_NETWORK} decoders; model.net is {net['_target_']}")
    del net["_target_"]
    net.pop("decoder_width", None)
    datamodule = reading_datamodule(cfg.data)
    options = {
        method: network_config(
            net, datamodule.in_channels, datamodule.num_classes, method, cfg.model.upsample_options
        )
        for method in methods
    }
    target = max(parameter_count(**method_options) for method_options in options.values())
    return {method: decoder_width_for(target, **method_options) for method, method_options in options.items()}


def make_plan(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Any]:
    """The plan of the comparison ``cfg`` describes (the content of ``compare.json``).

    The training plan (:mod:`unet.planning`: the config's ``auto`` keys) is made once, for
    ``cfg.model.upsample``, and given to every run as overrides: every method trains with the same
    patch, batch, precision and cadence, so only the method differs.
    """
    methods = selected_methods(cfg.methods)
    training_plan = plan_config(cfg)
    planned = plan_overrides(training_plan) if training_plan else []
    return {
        "command": command,
        "methods": methods,
        "seeds": [int(seed) for seed in cfg.seeds],
        "equal_params": bool(cfg.equal_params),
        "decoder_widths": equal_parameter_widths(methods, cfg) if cfg.equal_params else None,
        "train_overrides": [*train_overrides, *planned],
        "training_plan": training_plan.to_dict() if training_plan else None,
        "compare_config": plain_config(cfg),
    }


def sweep_command(plan: dict[str, Any], runs_dir: Path) -> list[str]:
    """``unet-train -m`` over the plan's methods and seeds, one run in ``<runs_dir>/<method>/seed_<seed>/``.

    Runs record their failures instead of stopping the sweep, so every planned run has a result.
    """
    widths = plan["decoder_widths"]
    return [
        sys.executable,
        "-m",
        "unet.apps.train",
        "-m",
        f"model.upsample={','.join(plan['methods'])}",
        f"seed={','.join(str(seed) for seed in plan['seeds'])}",
        f"hydra.sweep.dir={runs_dir}",
        "hydra.sweep.subdir=${model.upsample}/seed_${seed}",
        "record_failures=true",
        *([f"decoder_widths={{{', '.join(f'{m}: {w}' for m, w in widths.items())}}}"] if widths else []),
        *plan["train_overrides"],
    ]
