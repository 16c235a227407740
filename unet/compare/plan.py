"""What a comparison trains: its methods, seeds and decoder widths, and the ``unet-train -m`` sweep that runs them.

The plan is written to ``compare.json`` before anything trains, so ``report_only=true`` rebuilds the
report of exactly those runs later, and the command that made them stays on record.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from unet.models import UPSAMPLERS
from unet.models.networks import network_config
from unet.models.sizing import decoder_width_for, parameter_count
from unet.planning import plan_config, plan_overrides, reading_datamodule
from unet.utils.config import override_value, plain_config

PLAN_FILE = "compare.json"
# Keys of configs/compare.yaml that are unet-compare's own: every other override goes to each run.
COMPARE_KEYS = (
    "methods",
    "variants",
    "seeds",
    "output_dir",
    "report_only",
    "resume",
    "equal_params",
    "sort_by",
    "costs",
)
# Hydra settings of where unet-compare itself runs; the sweep sets its own.
PLACEMENT_KEYS = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.output_subdir")
# The key of a method's options, which a variant sets.
OPTIONS_KEY = "model.upsample_options"
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


def method_specs(
    methods: Sequence[str] | None, variants: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """What each compared name trains: ``{name: {"upsample": method, "options": {...} | None}}``, in order.

    A name is a registered upsampling method (trained with the runs' own ``model.upsample_options``,
    ``options`` None) or one of ``variants`` (configs/compare.yaml: a registered method with its
    options, e.g. ``transposed_k3``). ``None`` or empty: every registered method.
    """
    variants = variants or {}
    if not methods:
        return {name: {"upsample": name, "options": None} for name in sorted(UPSAMPLERS)}
    shadowing = sorted(name for name in variants if name in UPSAMPLERS)
    if shadowing:
        raise ValueError(f"variants {shadowing} are named like registered methods; give them other names")
    unknown = [name for name in methods if name not in UPSAMPLERS and name not in variants]
    if unknown:
        raise ValueError(
            f"unknown upsampling method(s) {unknown}; valid names: {', '.join(sorted(UPSAMPLERS))}"
            + (f"; variants: {', '.join(sorted(variants))}" if variants else "")
        )
    specs = {}
    for name in dict.fromkeys(methods):
        if name in UPSAMPLERS:
            specs[name] = {"upsample": name, "options": None}
            continue
        variant = (
            plain_config(variants[name]) if isinstance(variants[name], DictConfig) else dict(variants[name])
        )
        if set(variant) != {"upsample", "options"} or variant["upsample"] not in UPSAMPLERS:
            raise ValueError(
                f"variants.{name}: expected {{upsample: <a registered method>, options: {{...}}}}, got {variant}"
            )
        specs[name] = {"upsample": variant["upsample"], "options": dict(variant["options"] or {})}
    return specs


def equal_parameter_widths(methods: Sequence[str], cfg: DictConfig) -> dict[str, float]:
    """Per-method ``decoder_width`` giving every method the parameter count of the largest at width 1.

    Sizes the network of ``cfg.model.net`` (with the data's channels and classes) without its
    ``decoder_width``, which is the per-method value this returns. ``methods`` may name variants
    (``cfg.variants``), sized with their own options.
    """
    net = plain_config(cfg.model.net)
    if net["_target_"] != SIZED_NETWORK:
        raise ValueError(f"equal_params=true sizes {SIZED_NETWORK} decoders; model.net is {net['_target_']}")
    del net["_target_"]
    net.pop("decoder_width", None)
    datamodule = reading_datamodule(cfg.data)
    specs = method_specs(methods, cfg.get("variants"))
    options = {
        name: network_config(
            net,
            datamodule.in_channels,
            datamodule.num_classes,
            spec["upsample"],
            cfg.model.upsample_options if spec["options"] is None else spec["options"],
            encoder=cfg.model.get("encoder"),
        )
        for name, spec in specs.items()
    }
    target = max(parameter_count(**method_options) for method_options in options.values())
    return {method: decoder_width_for(target, **method_options) for method, method_options in options.items()}


def make_plan(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Any]:
    """The plan of the comparison ``cfg`` describes (the content of ``compare.json``).

    The training plan (:mod:`unet.planning`: the config's ``auto`` keys) is made once, for
    ``cfg.model.upsample``, and given to every run as overrides: every method trains with the same
    patch, batch, precision and cadence, so only the method differs.
    """
    specs = method_specs(cfg.methods, cfg.get("variants"))
    methods = list(specs)
    training_plan = plan_config(cfg)
    planned = plan_overrides(training_plan) if training_plan else []
    return {
        "command": command,
        "methods": methods,
        "variants": {name: spec for name, spec in specs.items() if spec["options"] is not None},
        "seeds": [int(seed) for seed in cfg.seeds],
        "equal_params": bool(cfg.equal_params),
        "decoder_widths": equal_parameter_widths(methods, cfg) if cfg.equal_params else None,
        "train_overrides": [*train_overrides, *planned],
        "training_plan": training_plan.to_dict() if training_plan else None,
        "compare_config": plain_config(cfg),
    }


def sweep_commands(plan: dict[str, Any], runs_dir: Path) -> list[list[str]]:
    """``unet-train -m`` commands training every planned (name, seed) into ``<runs_dir>/<name>/seed_<seed>/``.

    The registered methods share one sweep over ``model.upsample`` (a launcher sends them out
    together); each variant is a sweep of its own, since it sets ``model.upsample_options`` too.
    Runs record their failures instead of stopping the sweep, so every planned run has a result.
    """
    variants = plan.get("variants") or {}
    widths = plan["decoder_widths"] or {}
    seeds = f"seed={','.join(str(seed) for seed in plan['seeds'])}"
    methods = [name for name in plan["methods"] if name not in variants]

    def sweep(sweep_overrides: list[str], subdir: str, variant: bool = False) -> list[str]:
        # A variant's options replace the runs' model.upsample_options instead of merging with them.
        train = [o for o in plan["train_overrides"] if not (variant and _is_under(_key(o), [OPTIONS_KEY]))]
        return [
            sys.executable, "-m", "unet.apps.train", "-m",
            seeds, f"hydra.sweep.dir={runs_dir}", f"hydra.sweep.subdir={subdir}/seed_${{seed}}",
            "record_failures=true", *train, *sweep_overrides,
        ]  # fmt: skip

    commands = []
    if methods:
        method_widths = {name: widths[name] for name in methods if name in widths}
        commands.append(
            sweep(
                [
                    f"model.upsample={','.join(methods)}",
                    *([f"decoder_widths={override_value(method_widths)}"] if method_widths else []),
                ],
                "${model.upsample}",
            )
        )
    for name, spec in variants.items():
        width = [f"model.net.decoder_width={widths[name]}"] if name in widths else []
        options = f"{OPTIONS_KEY}={override_value(spec['options'])}"
        commands.append(sweep([f"model.upsample={spec['upsample']}", options, *width], name, variant=True))
    return commands
