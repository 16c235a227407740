"""``unet-compare``: which decoder upsampling should my U-Net use? Train each method, then report.

Runs go through ``unet-train``'s Hydra multirun (so a launcher plugin can send them to a cluster),
one run per (method, seed) in ``<output_dir>/runs/<method>/seed_<seed>/``; then the report
(``comparison.csv/json/md`` and figures) is written from whatever those directories hold. A run that
failed is reported as failed, never dropped.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.apps.runs import plain_config, user_errors_exit
from unet.compare import write_report
from unet.evaluation.profiling import model_costs
from unet.models import UPSAMPLERS
from unet.models.sizing import decoder_width_for, parameter_count
from unet.training.checkpoint import RUN_CONFIG_KEY, module_from_checkpoint
from unet.utils.files import read_json, write_json
from unet.utils.visualize import denormalize

log = logging.getLogger(__name__)
PLAN_FILE = "compare.json"
COSTS_FILE = "costs.json"


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``key=value`` arguments of ``configs/compare.yaml`` from unet-train overrides."""
    with initialize_config_module("unet.configs", version_base="1.3"):
        own_keys = set(compose("compare").keys())
    own, train = [], []
    for argument in arguments:
        key = argument.split("=", 1)[0].lstrip("+~").split(".", 1)[0]
        (own if key in own_keys else train).append(argument)
    return own, train


def load_config(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_module("unet.configs", version_base="1.3"):
        cfg = compose("compare", overrides=list(overrides))
    if cfg.output_dir is None:
        cfg.output_dir = str(
            Path(cfg.paths.log_dir) / "compare" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
        )
    return cfg


def selected_methods(methods: Sequence[str] | None) -> list[str]:
    if not methods:
        return sorted(UPSAMPLERS)
    unknown = [name for name in methods if name not in UPSAMPLERS]
    if unknown:
        raise ValueError(
            f"unknown upsampling method(s) {unknown}; valid names: {', '.join(sorted(UPSAMPLERS))}"
        )
    return list(dict.fromkeys(methods))


def train_config(train_overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The unet-train config every run starts from (before method and seed), to size models and report."""
    with initialize_config_module("unet.configs", version_base="1.3"):
        return compose("train", overrides=[*train_overrides, f"paths.output_dir={output_dir}"])


def equal_parameter_widths(methods: Sequence[str], cfg: DictConfig) -> dict[str, float]:
    """Per-method ``decoder_width`` giving every method the parameter count of the largest."""
    datamodule = instantiate(cfg.data)
    model = cfg.model
    options = {
        "in_channels": datamodule.in_channels,
        "num_classes": datamodule.num_classes,
        "depth": model.depth,
        "base_channels": model.base_channels,
        "fuse": model.fuse,
        "norm": model.norm,
        "upsample_options": OmegaConf.to_container(model.upsample_options),
    }
    target = max(parameter_count(upsample=method, **options) for method in methods)
    return {method: decoder_width_for(target, upsample=method, **options) for method in methods}


def run_sweep(
    methods: Sequence[str],
    seeds: Sequence[int],
    runs_dir: Path,
    widths: dict[str, float] | None,
    overrides: Sequence[str],
) -> int:
    """Train every (method, seed) through ``unet-train -m``; returns its exit code."""
    command = [
        sys.executable,
        "-m",
        "unet.apps.train",
        "-m",
        f"model.upsample={','.join(methods)}",
        f"seed={','.join(str(seed) for seed in seeds)}",
        f"hydra.sweep.dir={runs_dir}",
        "hydra.sweep.subdir=${model.upsample}/seed_${seed}",
        "record_failures=true",
        *([f"decoder_widths={{{', '.join(f'{m}: {w}' for m, w in widths.items())}}}"] if widths else []),
        *overrides,
    ]
    log.info("running %d trainings: %s", len(methods) * len(seeds), " ".join(command[2:]))
    return subprocess.run(command, check=False).returncode


def collect_records(runs_dir: Path, methods: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One record per planned (method, seed): ok with its metrics and history, or failed with why."""
    records = []
    for method in methods:
        for seed in seeds:
            run_dir = runs_dir / method / f"seed_{seed}"
            metrics, error = read_json(run_dir / "metrics.json"), read_json(run_dir / "error.json")
            if metrics is not None:
                status, message = "ok", None
            elif error is not None:
                status, message = "failed", error["error"]
            else:
                status, message = (
                    "failed",
                    f"no result in {run_dir} (the run did not start or did not finish)",
                )
            records.append(
                {
                    "method": method,
                    "seed": seed,
                    "status": status,
                    "error": message,
                    "run_dir": str(run_dir),
                    "metrics": metrics or {},
                    "history": read_json(run_dir / "history.json") or [],
                }
            )
    return records


def best_checkpoints(records: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """For each method, the best checkpoint of its first successful run."""
    found: dict[str, Path] = {}
    for record in records:
        path = Path(record["run_dir"]) / "checkpoints" / "best.ckpt"
        if record["status"] == "ok" and record["method"] not in found and path.is_file():
            found[record["method"]] = path
    return found


def measure_costs(
    checkpoints: dict[str, Path], cost_cfg: DictConfig, cache: Path
) -> dict[str, dict[str, float]]:
    """Parameters, GFLOPs, throughput, latency and memory of each method's model, on this machine.

    Measured once per method and kept in ``costs.json``, so rebuilding a report does not re-measure.
    """
    costs = read_json(cache) or {}
    for method, path in checkpoints.items():
        if method in costs:
            continue
        module, _ = module_from_checkpoint(path)
        hparams = module.hparams
        log.info("measuring the cost of %s", method)
        costs[method] = model_costs(
            module.net,
            hparams.in_channels,
            hparams.num_classes,
            cost_cfg.height,
            cost_cfg.width,
            batch_size=cost_cfg.batch_size,
            device=cost_cfg.device,
        )
        write_json(cache, costs)
    return costs


def qualitative_panel(checkpoints: dict[str, Path]) -> dict[str, Any] | None:
    """The first validation image with its ground truth and every method's prediction."""
    if not checkpoints:
        return None
    predictions, image, target, ignore_index = {}, None, None, None
    for method, path in checkpoints.items():
        module, checkpoint = module_from_checkpoint(path)
        if image is None:
            datamodule = instantiate(OmegaConf.create(checkpoint[RUN_CONFIG_KEY]["data"]))
            datamodule.setup("validate")
            normalized, target = datamodule.dataset("val")[0]
            image = denormalize(normalized, datamodule.mean, datamodule.std)
            ignore_index = datamodule.ignore_index
        with torch.inference_mode():
            predictions[method] = module(normalized[None]).argmax(dim=1)[0]
    return {"image": image, "target": target, "predictions": predictions, "ignore_index": ignore_index}


def compare(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Path]:
    """Run (unless ``report_only``) and report the comparison described by ``cfg``; returns the report files."""
    output_dir = Path(cfg.output_dir)
    runs_dir = output_dir / "runs"
    plan_path = output_dir / PLAN_FILE
    if cfg.report_only:
        plan = read_json(plan_path)
        if plan is None:
            raise FileNotFoundError(
                f"{plan_path} not found: report_only=true needs the output_dir of a comparison"
            )
    else:
        if plan_path.exists() or runs_dir.exists():
            raise FileExistsError(
                f"{output_dir} already holds a comparison; rebuild its report with report_only=true, "
                "or choose a new output_dir"
            )
        methods = selected_methods(cfg.methods)
        seeds = [int(seed) for seed in cfg.seeds]
        widths = (
            equal_parameter_widths(methods, train_config(train_overrides, runs_dir))
            if cfg.equal_params
            else None
        )
        plan = {
            "command": command,
            "methods": methods,
            "seeds": seeds,
            "equal_params": bool(cfg.equal_params),
            "decoder_widths": widths,
            "train_overrides": list(train_overrides),
            "compare_config": plain_config(cfg),
        }
        write_json(plan_path, plan)
        returncode = run_sweep(methods, seeds, runs_dir, widths, train_overrides)
        if returncode != 0:
            log.warning("the training sweep exited with code %d; the report shows what finished", returncode)

    records = collect_records(runs_dir, plan["methods"], plan["seeds"])
    checkpoints = best_checkpoints(records)
    costs = measure_costs(checkpoints, cfg.costs, output_dir / COSTS_FILE)
    config = {
        key: plan[key] for key in ("methods", "seeds", "equal_params", "decoder_widths", "train_overrides")
    }
    written = write_report(
        records,
        costs,
        output_dir,
        command=plan["command"],
        config=config,
        sort_by=cfg.sort_by,
        qualitative=qualitative_panel(checkpoints),
    )
    failed = sum(record["status"] != "ok" for record in records)
    log.info("report written to %s (%d runs, %d failed)", written["markdown"], len(records), failed)
    return written


def main(arguments: Sequence[str] | None = None) -> None:
    """Entry point of ``unet-compare``: its own keys (configs/compare.yaml) and unet-train overrides."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    with user_errors_exit():
        own, train_overrides = split_arguments(arguments)
        compare(load_config(own), train_overrides, " ".join(["unet-compare", *arguments]))


if __name__ == "__main__":
    main()
