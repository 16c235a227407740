"""The comparison's training runs: launching the sweep and reading back what each run left behind."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unet.compare.plan import sweep_commands
from unet.utils.files import read_json

log = logging.getLogger(__name__)
# Where mode=resume keeps the directories of the failed runs it trains again (under output).
FAILED_DIR = "failed_runs"


def run_sweep(plan: dict[str, Any], runs_dir: Path) -> int:
    """Train every planned (name, seed) through :func:`~unet.compare.plan.sweep_commands`, one sweep after
    another; returns the first non-zero exit code (0 when every sweep exited cleanly).

    A sweep or launcher that fails leaves runs without results, which are then reported as failed
    rather than stopping the comparison.
    """
    commands = sweep_commands(plan, runs_dir)
    log.info("running %d trainings in %d sweep(s)", len(plan["methods"]) * len(plan["seeds"]), len(commands))
    returncode = 0
    for command in commands:
        log.info("sweep: %s", " ".join(command[2:]))
        returncode = returncode or subprocess.run(command, check=False).returncode
    return returncode


def rerun_unfinished(plan: dict[str, Any], runs_dir: Path, failed_dir: Path) -> int:
    """Train again every planned (name, seed) without a result (``mode=resume``); returns the first
    non-zero exit code of its sweeps.

    A failed run's directory is moved to ``failed_dir/<name>/seed_<seed>[.N]`` first, so its log and
    error stay on record and the new run starts clean.
    """
    unfinished: dict[str, list[int]] = {}
    for record in collect_records(runs_dir, plan["methods"], plan["seeds"]):
        if record["status"] != "ok":
            unfinished.setdefault(record["method"], []).append(record["seed"])
            run_dir = Path(record["run_dir"])
            if run_dir.exists():
                kept = failed_dir / record["method"] / run_dir.name
                number = 0
                while kept.exists():
                    number += 1
                    kept = kept.with_name(f"{run_dir.name}.{number}")
                kept.parent.mkdir(parents=True, exist_ok=True)
                run_dir.rename(kept)
    if not unfinished:
        log.info("every planned run has a result: nothing to resume")
        return 0
    log.info("resuming %d unfinished runs: %s", sum(map(len, unfinished.values())),
             ", ".join(f"{name} seeds {seeds}" for name, seeds in unfinished.items()))  # fmt: skip
    returncode = 0
    for name, seeds in unfinished.items():
        returncode = returncode or run_sweep({**plan, "methods": [name], "seeds": seeds}, runs_dir)
    return returncode


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
