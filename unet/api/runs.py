"""Training, comparing, evaluating, planning and checking data from Python: each function composes its
command's config from keywords (:mod:`unet.api.keywords`) and runs the library function the command runs:
:func:`train` as ``unet-train`` (:func:`unet.training.run.train`), :func:`compare_methods` as ``unet-compare``
(:func:`unet.compare.run_comparison`), :func:`evaluate` as ``unet-eval``
(:func:`unet.training.evaluate.evaluate`), :func:`plan` as ``unet-plan`` (:func:`unet.planning.plan_config`)
and :func:`check_data` as ``unet-check-data`` (:func:`unet.planning.check_data_from_config`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from unet.api.jobs import command_config, run_job
from unet.compare import run_comparison, run_overrides
from unet.planning import Plan, check_data_from_config, plan_config
from unet.training.evaluate import evaluate as evaluate_checkpoint
from unet.training.run import train as train_run
from unet.utils.files import read_json

# The score a Run shows in its repr (the one unet-train returns to sweepers).
SCORE = "val/miou"


def command_line(command: str, overrides: Sequence[str]) -> str:
    """The shell command that composes the same config: ``unet-train data=folder 'data.root=my cells'``."""
    return shlex.join([command, *overrides])


@dataclass(frozen=True)
class Run:
    """A finished training run: its directory, final metrics (``metrics.json``) and the overrides that
    composed its config (:attr:`command` repeats it from a shell)."""

    directory: Path
    metrics: dict[str, float]
    overrides: tuple[str, ...]

    @property
    def best(self) -> Path | None:
        """``checkpoints/best.ckpt``: the best validation score's weights (``None`` without one)."""
        return _existing(self.directory / "checkpoints" / "best.ckpt")

    @property
    def last(self) -> Path | None:
        """``checkpoints/last.ckpt``: the latest state, to resume from (``ckpt_path=``)."""
        return _existing(self.directory / "checkpoints" / "last.ckpt")

    @property
    def config(self) -> dict[str, Any]:
        """The run's ``config.yaml``: the config it trained with, planned values included."""
        import yaml

        return yaml.safe_load((self.directory / "config.yaml").read_text())

    @property
    def command(self) -> str:
        return command_line("unet-train", self.overrides)

    def __repr__(self) -> str:
        score = self.metrics.get(SCORE)
        return (
            f"Run({str(self.directory)!r}, {SCORE}={score:.4f})"
            if score is not None
            else f"Run({str(self.directory)!r})"
        )


@dataclass(frozen=True)
class Comparison:
    """A finished comparison: its directory, its report files by name (``markdown``, ``html``, ``csv``,
    ``json``, figures) and the overrides that composed its config."""

    directory: Path
    files: dict[str, Path]
    overrides: tuple[str, ...]

    @property
    def report(self) -> dict[str, Any]:
        """``comparison.json``: one row per method (``methods``), the verdict's ``statistics``, every run."""
        return read_json(self.files["json"])

    @property
    def methods(self) -> list[dict[str, Any]]:
        """The report's rows, best first by the comparison's ``sort_by`` metric."""
        return self.report["methods"]

    @property
    def command(self) -> str:
        return command_line("unet-compare", self.overrides)

    def __repr__(self) -> str:
        return f"Comparison({str(self.directory)!r}, report={str(self.files['markdown'])!r})"


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def train(*, overrides: Sequence[str] = (), **keywords: Any) -> Run:
    """Train as ``unet-train`` would with these keywords (and ``overrides``, command-line strings);
    the run directory is ``hydra.run.dir`` (``logs/train/runs/<time>/``) unless ``output_dir`` is given."""
    cfg, everything = command_config("train", keywords, overrides)

    def work(task: DictConfig) -> Run:
        metrics = train_run(task)
        return Run(Path(task.paths.output_dir), metrics, tuple(everything))

    return run_job(cfg, work)


def compare_methods(*, overrides: Sequence[str] = (), **keywords: Any) -> Comparison:
    """Compare upsampling methods as ``unet-compare`` would: ``methods``, ``seeds``, ``output`` and
    compare's other keys for the comparison, every other keyword for each of its training runs."""
    cfg, everything = command_config("compare", keywords, overrides)

    def work(task: DictConfig) -> Comparison:
        hydra = HydraConfig.get().overrides
        train_overrides = run_overrides(hydra.task, hydra.hydra)
        files = run_comparison(task, train_overrides, command_line("unet-compare", everything))
        written = {name: path.absolute() for name, path in files.items()}
        return Comparison(Path(task.output).absolute(), written, tuple(everything))

    return run_job(cfg, work)


def evaluate(
    checkpoint: str | os.PathLike | Run, *, overrides: Sequence[str] = (), **keywords: Any
) -> dict[str, Any]:
    """Score a checkpoint (a ``.ckpt``, a run directory, or a :class:`Run`) as ``unet-eval`` would;
    returns what it writes to ``eval.json`` (``metrics``, ``per_class``, the ``split`` scored)."""
    path = checkpoint.directory if isinstance(checkpoint, Run) else checkpoint
    cfg, _ = command_config("eval", {"ckpt_path": path, **keywords}, overrides)
    return run_job(cfg, evaluate_checkpoint)


def plan(*, overrides: Sequence[str] = (), **keywords: Any) -> Plan | None:
    """The training plan ``unet-plan`` prints for these unet-train keywords (every ``auto`` key's value
    and why; :func:`unet.planning.format_plan` prints it), or ``None`` when nothing is ``auto``."""
    cfg, _ = command_config("plan", keywords, overrides)
    return run_job(cfg, plan_config)


def check_data(*, overrides: Sequence[str] = (), **keywords: Any) -> dict[str, Any]:
    """Read and check every sample as ``unet-check-data`` would; returns its summary."""
    cfg, _ = command_config("check_data", keywords, overrides)
    return run_job(cfg, check_data_from_config)
