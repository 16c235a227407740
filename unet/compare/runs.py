"""The comparison's training runs: launching the sweep and reading back what each run left behind."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unet.compare.plan import sweep_command
from unet.utils.files import read_json

log = logging.getLogger(__name__)


def run_sweep(plan: dict[str, Any], runs_dir: Path) -> int:
    """Train every planned (method, seed) through :func:`~unet.compare.plan.sweep_command`; returns its exit code.

    A sweep or launcher that fails leaves runs without results, which are then reported as failed
    rather than stopping the comparison.
    """
    command = sweep_command(plan, runs_dir)
    log.info("running %d trainings: %s", len(plan["methods"]) * len(plan["seeds"]), " ".join(command[2:]))
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
