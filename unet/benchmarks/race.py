"""Time to quality: train recipes for one wall-clock budget, score their weights over time on held-out
data, and tell how long each needs to reach a target score (``unet-benchmark mode=time_to_quality``).

What a user feels is not images per second but how long until a model is good. Each contender is a
list of ``unet-train`` overrides (a preset, a peer network, a candidate recipe) trained in its own
process, one after another so they do not share the cores. A :class:`~unet.training.callbacks.TimedSnapshots`
callback saves the weights every ``every_s`` seconds of training; afterwards every snapshot is scored on
the held-out split (the test split when the data has one), so the score costs the race nothing. The
target, unless given, is the score of the model the reference delivers at the end of its budget (its
best checkpoint, as ``unet-train`` reports it); the figure is each contender's time to reach it, as a
ratio to the reference's.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from unet.benchmarks.settings import RaceSettings
from unet.compare.figures import plot_time_to_quality
from unet.profiling.machine import cpu_flags, machine_name
from unet.training.evaluate import score_checkpoints
from unet.utils.errors import ConfigError, UserError
from unet.utils.files import read_json, write_json
from unet.utils.tables import text_table

log = logging.getLogger(__name__)
SNAPSHOTS = "snapshots"


class RaceError(UserError, RuntimeError):
    """The race has no result: its reference contender failed to train."""


def train_command(settings: RaceSettings, overrides: Sequence[str], run_dir: Path) -> list[str]:
    """``unet-train`` for one contender: the common overrides, the budget, its own overrides (which may
    change the budget), its run directory and the snapshot callback."""
    return [
        sys.executable, "-m", "unet.apps.train",
        *settings.overrides,
        f"trainer.max_time={settings.budget_s:g}",  # seconds: read once, by the run
        *overrides,
        f"hydra.run.dir={run_dir}",
        "+callbacks.timed_snapshots._target_=unet.training.callbacks.TimedSnapshots",
        f"+callbacks.timed_snapshots.dirpath={run_dir / SNAPSHOTS}",
        f"+callbacks.timed_snapshots.every_s={settings.every_s}",
    ]  # fmt: skip


def score_curve(run_dir: Path, metric: str, split: str) -> tuple[str, list[dict[str, float]]]:
    """Every snapshot of a finished run scored: ``[{"seconds", "step", "score"}]`` in time order."""
    index = run_dir / SNAPSHOTS / "snapshots.json"
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: the run saved no snapshot (see {run_dir}/train.log)")
    records = read_json(index)
    split, results = score_checkpoints([run_dir / SNAPSHOTS / r["file"] for r in records], split)
    key = f"{split}/{metric}"
    if key not in results[0]:
        names = sorted(k.split("/", 1)[1] for k in results[0] if k.startswith(f"{split}/"))
        raise ConfigError(f"race.metric={metric!r} is not a score of this data; expected one of {names}")
    curve = [
        {"seconds": r["seconds"], "step": r["step"], "score": scores[key]}
        for r, scores in zip(records, results, strict=True)
    ]
    return split, curve


def time_to_reach(
    curve: Sequence[Mapping[str, float]], target: float, delivered: float | None = None
) -> float | None:
    """Training seconds of the first snapshot scoring ``target`` or more; else the end of training when
    the model the run delivered (its best checkpoint) scores it; else ``None``."""
    reached = next((point["seconds"] for point in curve if point["score"] >= target), None)
    if reached is None and delivered is not None and delivered >= target:
        return curve[-1]["seconds"]
    return reached


def times_to_target(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    delivered: Mapping[str, float | None],
    reference: str,
    target: float | None,
) -> dict[str, Any]:
    """The target and, per contender, its scores and time to the target, and the reference's time
    divided by its own (above 1: faster than the reference).

    The target, unless given, is the score of the model the reference delivered at the end of its
    budget (``delivered``: the checkpoint unet-train keeps, chosen on validation, scored on the held-out
    split), else its last snapshot's. Snapshots are the weights as they were, unselected, so reaching
    the target on one is as hard as it can be.
    """
    if target is None:
        target = delivered.get(reference)
        if target is None:
            target = curves[reference][-1]["score"]
    reference_time = time_to_reach(curves[reference], target, delivered.get(reference))
    rows = {}
    for name, curve in curves.items():
        seconds = time_to_reach(curve, target, delivered.get(name))
        rows[name] = {
            "delivered_score": delivered.get(name),
            "final_score": curve[-1]["score"],
            "best_score": max(point["score"] for point in curve),
            "trained_s": curve[-1]["seconds"],
            "time_to_target_s": seconds,
            "speedup_vs_reference": reference_time / seconds if seconds and reference_time else None,
        }
    return {"target": target, "contenders": rows}


def format_race(report: Mapping[str, Any]) -> str:
    """The race's table: each contender's final score, time to target and speedup over the reference."""
    minutes = "{:.1f}"
    columns = [
        ("contender", "name", "{}"),
        ("delivered", "delivered_score", "{:.4f}"),
        ("last snapshot", "final_score", "{:.4f}"),
        ("best snapshot", "best_score", "{:.4f}"),
        ("trained min", "trained_min", minutes),
        ("min to target", "target_min", minutes),
        ("vs reference", "speedup_vs_reference", "{:.2f}x"),
    ]
    records = [
        {
            **row,
            "name": name,
            "trained_min": row["trained_s"] / 60,
            "target_min": None if row["time_to_target_s"] is None else row["time_to_target_s"] / 60,
        }
        for name, row in report["contenders"].items()
    ]
    head = (
        f"time to quality on {report['machine']}: {report['split']}/{report['metric']}, "
        f"target {report['target']:.4f} ({report['target_from']}); '-': not reached"
    )
    failed = "".join(f"\nfailed: {name}: {why}" for name, why in report["failed"].items())
    return f"{head}\n{text_table(columns, records, rule=True)}{failed}"


def run_race(settings: RaceSettings, output_dir: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Train every contender in turn, score its snapshots and write ``time_to_quality.json`` and
    ``time_to_quality.png`` into ``output_dir``; returns the report.

    A contender whose training fails is reported as such and the others still run; the race fails
    only when the reference has no curve (no target to reach).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    curves: dict[str, list[dict[str, float]]] = {}
    delivered: dict[str, float | None] = {}
    failed: dict[str, str] = {}
    split = settings.split
    for number, (name, overrides) in enumerate(settings.contenders.items(), 1):
        run_dir = output_dir / name
        command = train_command(settings, overrides, run_dir)
        log.info("contender %d/%d %s: %s", number, len(settings.contenders), name, " ".join(command[3:]))
        returncode = subprocess.run(command, check=False).returncode
        if returncode != 0:
            failed[name] = f"unet-train exited with {returncode} (see {run_dir}/train.log)"
            log.error("contender %s failed: %s", name, failed[name])
            continue
        split, curves[name] = score_curve(run_dir, settings.metric, settings.split)
        if not settings.keep_snapshots:  # a full checkpoint each (tens of MB): the scores are kept
            for snapshot in (run_dir / SNAPSHOTS).glob("*.ckpt"):
                snapshot.unlink()
        delivered[name] = read_json(run_dir / "metrics.json").get(f"{split}/{settings.metric}")
        log.info("contender %s: %s/%s %s delivered, %.4f at the last snapshot", name, split, settings.metric,
                 delivered[name], curves[name][-1]["score"])  # fmt: skip
    if settings.reference not in curves:
        raise RaceError(f"the reference contender {settings.reference} failed: {failed[settings.reference]}")
    summary = times_to_target(curves, delivered, settings.reference, settings.target)
    report = {
        "machine": machine_name(device),
        "cpu_flags": cpu_flags(),
        "settings": asdict(settings),
        "split": split,
        "metric": settings.metric,
        "target_from": "given" if settings.target is not None else f"what {settings.reference} delivered",
        **summary,
        "failed": failed,
        "curves": curves,
    }
    plot_time_to_quality(curves, summary, f"{split}/{settings.metric}", output_dir / "time_to_quality.png")
    write_json(output_dir / "time_to_quality.json", report)
    return report
