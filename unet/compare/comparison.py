"""A whole comparison: plan, train every (method, seed), collect, measure and report.

Runs go through ``unet-train``'s Hydra multirun (so a launcher plugin can send them to a cluster),
one run per (method, seed) in ``<output>/runs/<method>/seed_<seed>/``; then the report
(``comparison.csv/json/md`` and figures) is written from whatever those directories hold. A run that
failed is reported as failed, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from unet.compare.costs import COSTS_FILE, method_costs
from unet.compare.plan import COMPARISON_FILE, plan_comparison
from unet.compare.qualitative import qualitative_panel
from unet.compare.report import write_report
from unet.compare.runs import FAILED_DIR, best_checkpoints, collect_records, rerun_unfinished, run_sweep
from unet.profiling.machine import default_device
from unet.utils.errors import ConfigError, InputNotFoundError, OutputExistsError
from unet.utils.files import read_json, write_json

log = logging.getLogger(__name__)
# What the report shows of the plan, under "config".
REPORTED_PLAN_KEYS = ("methods", "variants", "seeds", "equal_params", "decoder_widths", "train_overrides")
# What `mode` makes of the comparison in `output`: run it, train again its runs without a result, or
# only rebuild its report from the runs it has.
MODES = ("run", "resume", "report")


def run_comparison(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Path]:
    """Run the comparison ``cfg`` describes as its ``mode`` says (:data:`MODES`) and report it; returns
    the report files.

    ``cfg`` is configs/compare.yaml composed; ``train_overrides`` are what every run gets
    (:func:`~unet.compare.plan.run_overrides`); ``command`` is recorded in the report.
    """
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode}: no such mode of unet-compare; valid modes: {', '.join(MODES)}")
    output_dir = Path(cfg.output)
    runs_dir = output_dir / "runs"
    plan_path = output_dir / COMPARISON_FILE
    if cfg.mode != "run":
        plan = read_json(plan_path)
        if plan is None:
            raise InputNotFoundError(
                f"{plan_path} not found: mode={cfg.mode} needs the output of a comparison (output=DIR)"
            )
        if cfg.mode == "resume":
            returncode = rerun_unfinished(plan, runs_dir, output_dir / FAILED_DIR)
            if returncode != 0:
                log.warning(
                    "the training sweep exited with code %d; the report shows what finished", returncode
                )
    else:
        if plan_path.exists() or runs_dir.exists():
            raise OutputExistsError(
                f"{output_dir} already holds a comparison; rebuild its report with mode=report, "
                "finish it with mode=resume, or choose a new output"
            )
        plan = plan_comparison(cfg, train_overrides, command)
        write_json(plan_path, plan)
        returncode = run_sweep(plan, runs_dir)
        if returncode != 0:
            log.warning("the training sweep exited with code %d; the report shows what finished", returncode)

    records = collect_records(runs_dir, plan["methods"], plan["seeds"])
    checkpoints = best_checkpoints(records)
    written = write_report(
        records,
        method_costs(checkpoints, cfg.costs, default_device(cfg.device), output_dir / COSTS_FILE),
        output_dir,
        command=plan["command"],
        config={key: plan.get(key) for key in REPORTED_PLAN_KEYS},
        sort_by=cfg.sort_by,
        qualitative=qualitative_panel(checkpoints),
    )
    failed = sum(record["status"] != "ok" for record in records)
    log.info("report written to %s (%d runs, %d failed)", written["markdown"], len(records), failed)
    return written
