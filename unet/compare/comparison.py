"""A whole comparison: plan, train every (method, seed), collect, measure and report.

Runs go through ``unet-train``'s Hydra multirun (so a launcher plugin can send them to a cluster),
one run per (method, seed) in ``<output_dir>/runs/<method>/seed_<seed>/``; then the report
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
from unet.utils.errors import ConfigError, InputNotFoundError, OutputExistsError
from unet.utils.files import read_json, write_json

log = logging.getLogger(__name__)
# What the report shows of the plan, under "config".
REPORTED_PLAN_KEYS = ("methods", "variants", "seeds", "equal_params", "decoder_widths", "train_overrides")


def run_comparison(cfg: DictConfig, train_overrides: Sequence[str], command: str) -> dict[str, Path]:
    """Run (unless ``cfg.report_only``) and report the comparison ``cfg`` describes; returns the report files.

    ``cfg`` is configs/compare.yaml composed; ``train_overrides`` are what every run gets
    (:func:`~unet.compare.plan.run_overrides`); ``command`` is recorded in the report.
    """
    output_dir = Path(cfg.output_dir)
    runs_dir = output_dir / "runs"
    plan_path = output_dir / COMPARISON_FILE
    resume = bool(cfg.get("resume", False))
    if cfg.report_only and resume:
        raise ConfigError(
            "report_only=true and resume=true: choose one (resume=true also rebuilds the report)"
        )
    if cfg.report_only or resume:
        plan = read_json(plan_path)
        if plan is None:
            raise InputNotFoundError(
                f"{plan_path} not found: {'resume' if resume else 'report_only'}=true needs the output_dir of a comparison"
            )
        if resume:
            returncode = rerun_unfinished(plan, runs_dir, output_dir / FAILED_DIR)
            if returncode != 0:
                log.warning(
                    "the training sweep exited with code %d; the report shows what finished", returncode
                )
    else:
        if plan_path.exists() or runs_dir.exists():
            raise OutputExistsError(
                f"{output_dir} already holds a comparison; rebuild its report with report_only=true, "
                "or choose a new output_dir"
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
        method_costs(checkpoints, cfg.costs, output_dir / COSTS_FILE),
        output_dir,
        command=plan["command"],
        config={key: plan.get(key) for key in REPORTED_PLAN_KEYS},
        sort_by=cfg.sort_by,
        qualitative=qualitative_panel(checkpoints),
    )
    failed = sum(record["status"] != "ok" for record in records)
    log.info("report written to %s (%d runs, %d failed)", written["markdown"], len(records), failed)
    return written
