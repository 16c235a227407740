"""What a comparison trains: its methods, seeds and decoder widths, and the ``unet-train -m`` sweep that runs them.

The plan is written to ``compare.json`` before anything trains, so ``mode=report`` rebuilds the
report of exactly those runs later, and the command that made them stays on record.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from unet.models import UPSAMPLERS
from unet.models.networks import network_config
from unet.models.sizing import decoder_width_for, parameter_count
from unet.planning import planned_config, reading_datamodule
from unet.utils.config import override_key, override_value, plain_config
from unet.utils.config_checks import check_method_names
from unet.utils.errors import ConfigError

COMPARISON_FILE = "compare.json"
# Keys of configs/compare.yaml that are unet-compare's own: every other override goes to each run.
COMPARE_KEYS = (
    "methods",
    "variants",
    "seeds",
    "output",
    "mode",
    "equal_params",
    "sort_by",
    "costs",
)
# Hydra settings of where unet-compare itself runs; the sweep sets its own.
PLACEMENT_KEYS = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.output_subdir")
# The key of a method's options, which a variant sets.
OPTIONS_KEY = "model.upsample_options"
# Run keys a comparison sets for each run: a variant's overrides cannot set them.
VARIANT_SET_KEYS = (
    "model.upsample",
    OPTIONS_KEY,
    "model.net.decoder_width",
    "decoder_widths",
    "seed",
    "hydra",
)
# The only network equal_params can size (unet.models.sizing builds it).
SIZED_NETWORK = "unet.models.UNet"
# The MLflow logger of a run's config (configs/logger/mlflow.yaml).
MLFLOW_KEY = "logger.mlflow"


def _is_under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in prefixes)


def run_overrides(task_overrides: Sequence[str], hydra_overrides: Sequence[str]) -> list[str]:
    """The overrides every run gets, from unet-compare's own (Hydra's ``overrides.task`` and ``overrides.hydra``).

    That is the user's unet-train overrides, without compare's own keys (:data:`COMPARE_KEYS`), then
    the Hydra choices of how runs are launched (``hydra/launcher=slurm``, ``hydra.launcher.partition=gpu``),
    without those of where unet-compare itself runs (:data:`PLACEMENT_KEYS`).
    """
    train = [o for o in task_overrides if not _is_under(override_key(o), COMPARE_KEYS)]
    launch = [o for o in hydra_overrides if not _is_under(override_key(o), PLACEMENT_KEYS)]
    return [*train, *launch]


def method_specs(
    methods: Sequence[str] | None, variants: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """What each compared name trains: ``{name: {"upsample", "options", "overrides"}}``, in order.

    A name is a registered upsampling method (trained with the runs' own ``model.upsample_options``:
    ``options`` None, no ``overrides``) or one of ``variants`` (configs/compare.yaml): a registered
    method with its own options (default ``{}``) and, optionally, other settings of its runs
    (``overrides``: unet-train overrides as typed on its command line, e.g. ``[model.encoder=resnet34]``).
    ``None`` or empty: every registered method.
    """
    variants = variants or {}
    if not methods:
        return {name: {"upsample": name, "options": None, "overrides": []} for name in sorted(UPSAMPLERS)}
    shadowing = sorted(name for name in variants if name in UPSAMPLERS)
    if shadowing:
        raise ConfigError(f"variants {shadowing} are named like registered methods; give them other names")
    check_method_names(methods, variants, UPSAMPLERS)
    return {
        name: (
            {"upsample": name, "options": None, "overrides": []}
            if name in UPSAMPLERS
            else _variant_spec(name, variants[name])
        )
        for name in dict.fromkeys(methods)
    }


def _variant_spec(name: str, variant: Any) -> dict[str, Any]:
    """One variant of configs/compare.yaml, checked: a registered method, its options, its runs' overrides."""
    variant = plain_config(variant) if isinstance(variant, DictConfig) else variant
    expected = (
        f"variants.{name}: expected {{upsample: <a registered method>, options: {{...}}, "
        f"overrides: [key=value, ...]}} (options and overrides optional), got {variant}"
    )
    if not isinstance(variant, Mapping) or not set(variant) <= {"upsample", "options", "overrides"}:
        raise ConfigError(expected)
    if variant.get("upsample") not in UPSAMPLERS:
        raise ConfigError(expected)
    options, overrides = variant.get("options") or {}, variant.get("overrides") or []
    if isinstance(overrides, Mapping):  # an earlier version's form, {key: value}
        example = [f"{key}={override_value(value)}" for key, value in overrides.items()]
        raise ConfigError(
            f"variants.{name}.overrides is now a list of key=value overrides, as typed on the command "
            f"line: {override_value(example)}"
        )
    if not isinstance(options, Mapping) or not _is_override_list(overrides):
        raise ConfigError(expected)
    # Keys the variant itself (or the comparison) sets: an override of them would be lost or conflict.
    reserved = [o for o in overrides if _is_under(override_key(o), [*COMPARE_KEYS, *VARIANT_SET_KEYS])]
    if reserved:
        raise ConfigError(
            f"variants.{name}.overrides sets {reserved}, which the comparison sets itself; "
            "use the variant's upsample and options keys (seeds for the seed)"
        )
    return {"upsample": variant["upsample"], "options": dict(options), "overrides": list(overrides)}


def _is_override_list(overrides: Any) -> bool:
    """Whether ``overrides`` is a list of ``key=value`` strings (a ``race.contenders`` entry's form)."""
    return isinstance(overrides, list | tuple) and all(
        isinstance(override, str) and "=" in override for override in overrides
    )


def equal_parameter_widths(methods: Sequence[str], cfg: DictConfig) -> dict[str, float]:
    """Per-method ``decoder_width`` giving every method the parameter count of the largest at width 1.

    Sizes the network of ``cfg.model.net`` (with the data's channels and classes) without its
    ``decoder_width``, which is the per-method value this returns. ``methods`` may name variants
    (``cfg.variants``), sized with their own options.
    """
    specs = method_specs(methods, cfg.get("variants"))
    datamodule = reading_datamodule(cfg.data)
    options = {}
    for name, spec in specs.items():
        run = cfg.copy()  # with the variant's overrides, e.g. another encoder or depth
        for override in OverridesParser.create().parse_overrides(spec["overrides"]):
            OmegaConf.update(run, override.key_or_group, override.value(), force_add=True)
        net = plain_config(run.model.net)
        if net["_target_"] != SIZED_NETWORK:
            raise ConfigError(
                f"equal_params=true sizes {SIZED_NETWORK} decoders; model.net is {net['_target_']}"
            )
        del net["_target_"]
        net.pop("decoder_width", None)
        options[name] = network_config(
            net,
            datamodule.in_channels,
            datamodule.num_classes,
            spec["upsample"],
            run.model.upsample_options if spec["options"] is None else spec["options"],
            encoder=run.model.get("encoder"),
        )
    target = max(parameter_count(**method_options) for method_options in options.values())
    return {method: decoder_width_for(target, **method_options) for method, method_options in options.items()}


def plan_comparison(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Any]:
    """The plan of the comparison ``cfg`` describes (the content of ``compare.json``).

    The training plan (:mod:`unet.planning`: the config's ``auto`` keys) is made once, for
    ``cfg.model.upsample``, and given to every run as the same overrides (:meth:`~unet.planning.Plan.overrides`):
    every method trains with the same patch, batch, precision and cadence, so only the method differs.
    """
    specs = method_specs(cfg.methods, cfg.get("variants"))
    methods = list(specs)
    cfg, training_plan = planned_config(cfg)
    planned = training_plan.overrides() if training_plan else []
    replaced = training_plan.replaced_keys() if training_plan else ()
    return {
        "command": command,
        "methods": methods,
        "variants": {name: spec for name, spec in specs.items() if name not in UPSAMPLERS},
        "seeds": [int(seed) for seed in cfg.seeds],
        "equal_params": bool(cfg.equal_params),
        "decoder_widths": equal_parameter_widths(methods, cfg) if cfg.equal_params else None,
        "train_overrides": [*(o for o in train_overrides if override_key(o) not in replaced), *planned],
        "training_plan": training_plan.to_dict() if training_plan else None,
        "compare_config": plain_config(cfg),
    }


def mlflow_overrides(plan: dict[str, Any], runs_dir: Path, subdir: str) -> list[str]:
    """The MLflow settings of the runs of one sweep into ``<runs_dir>/<subdir>/``, when they log to MLflow.

    One store in the comparison's output directory (``runs_dir``'s parent: ``mlflow.db``,
    ``mlartifacts/``), one experiment named after it, and each run named ``<name>/seed_<seed>``, so the
    MLflow UI compares the methods too. A key the user set stays theirs (their ``tracking_uri``: their
    store, which keeps the artifacts where it does).
    """
    if "mlflow" not in ((plan.get("compare_config") or {}).get("logger") or {}):
        return []
    output_dir = runs_dir.resolve().parent
    settings = {
        "tracking_uri": override_value(f"sqlite:///{output_dir / 'mlflow.db'}"),
        "artifact_location": override_value(str(output_dir / "mlartifacts")),
        "experiment_name": override_value(output_dir.name),
        "run_name": f"{subdir}/seed_${{seed}}",
    }
    user = {override_key(o) for o in plan["train_overrides"]}
    if f"{MLFLOW_KEY}.tracking_uri" in user:
        del settings["artifact_location"]
    return [
        f"{MLFLOW_KEY}.{key}={value}" for key, value in settings.items() if f"{MLFLOW_KEY}.{key}" not in user
    ]


def sweep_commands(plan: dict[str, Any], runs_dir: Path) -> list[list[str]]:
    """``unet-train -m`` commands training every planned (name, seed) into ``<runs_dir>/<name>/seed_<seed>/``.

    The registered methods share one sweep over ``model.upsample`` (a launcher sends them out
    together); each variant is a sweep of its own, since it sets ``model.upsample_options`` too.
    Runs record their failures instead of stopping the sweep, so every planned run has a result.
    Runs logging to MLflow share one store and experiment (:func:`mlflow_overrides`).
    """
    variants = plan.get("variants") or {}
    widths = plan["decoder_widths"] or {}
    seeds = f"seed={','.join(str(seed) for seed in plan['seeds'])}"
    methods = [name for name in plan["methods"] if name not in variants]

    def sweep(
        sweep_overrides: list[str], subdir: str, variant: bool = False, extra: Sequence[str] = ()
    ) -> list[str]:
        # A variant's options and overrides replace the runs' own instead of merging with them.
        replaced = [OPTIONS_KEY, *(override_key(o) for o in extra)] if variant else []
        train = [*(o for o in plan["train_overrides"] if not _is_under(override_key(o), replaced)), *extra]
        return [
            sys.executable, "-m", "unet.apps.train", "-m",
            seeds, f"hydra.sweep.dir={runs_dir}", f"hydra.sweep.subdir={subdir}/seed_${{seed}}",
            "record_failures=true", *train, *mlflow_overrides(plan, runs_dir, subdir), *sweep_overrides,
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
        # Before the variant's own keys, so its overrides win over the runs' (e.g. model.encoder).
        commands.append(
            sweep(
                [f"model.upsample={spec['upsample']}", options, *width],
                name,
                variant=True,
                extra=spec.get("overrides") or [],
            )
        )
    return commands
