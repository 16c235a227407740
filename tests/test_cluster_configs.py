"""Cluster configs: hydra/launcher=slurm (hydra-submitit-launcher) and hydra/sweeper=optuna_miou
(hydra-optuna-sweeper) compose with the real plugins, write the SLURM job script we mean, and an
Optuna search runs end to end (a failing trial included)."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from conftest import TINY_NET, TINY_RUN, replacing, run_in_process
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from unet.compare import run_overrides
from unet.models import UPSAMPLERS
from unet.training.sweeps import FailedRunError, NanResultIsFailure
from unet.utils.config import compose_config

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@pytest.fixture
def submitit_plugin():
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason='hydra-submitit-launcher is not installed (pip install -e ".[cluster]")',
    )


@pytest.fixture
def optuna_plugin():
    pytest.importorskip(
        "hydra_plugins.hydra_optuna_sweeper",
        reason='hydra-optuna-sweeper is not installed (pip install -e ".[cluster]")',
    )


def train_with_hydra(*overrides: str) -> DictConfig:
    return compose_config("train", overrides, return_hydra_config=True)


def test_slurm_launcher_composes_with_our_defaults(submitit_plugin):
    launcher = train_with_hydra("hydra/launcher=slurm").hydra.launcher
    assert launcher._target_ == SLURM_LAUNCHER
    assert launcher.timeout_min == 240
    assert launcher.partition is None and launcher.account is None
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, 1)
    assert (launcher.cpus_per_task, launcher.mem_gb) == (8, 32)
    assert launcher.setup == [] and launcher.max_num_timeout == 0
    assert launcher.submitit_folder.endswith("/.submitit/%j")


def test_slurm_tasks_follow_the_ddp_trainer(submitit_plugin):
    cfg = train_with_hydra(
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
    )
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 30)


def test_unet_compare_passes_the_launcher_to_its_runs(submitit_plugin):
    arguments = [
        "methods=[nearest]",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "model.net.depth=3",
    ]
    cfg = compose_config("compare", arguments, return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == SLURM_LAUNCHER  # unet-compare composes the launcher itself
    train = run_overrides(cfg.hydra.overrides.task, cfg.hydra.overrides.hydra)
    assert train == ["model.net.depth=3", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    assert train_with_hydra(*train).hydra.launcher.partition == "gpu"  # and each run gets it


def write_fake_slurm(bin_dir: Path) -> None:
    """``srun`` that exists (submitit looks for it) and ``sbatch`` that keeps the job script and fails."""
    bin_dir.mkdir()
    scripts = {
        "srun": '#!/bin/sh\necho "fake srun" >&2\nexit 1\n',
        "sbatch": '#!/bin/sh\ncp "$1" "$SBATCH_CAPTURE"\necho "fake sbatch: not submitted" >&2\nexit 1\n',
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_unet_compare_writes_the_slurm_job_script(submitit_plugin, tmp_path, monkeypatch, capfd):
    """unet-compare -> unet-train -m -> submitit -> sbatch, with a fake sbatch that keeps the script.

    unet-compare's ``main`` runs in this process; the ``unet-train -m`` sweep it starts is a process of
    its own, as installed, down to the job script.
    """
    write_fake_slurm(tmp_path / "bin")
    script = tmp_path / "job.sh"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_CAPTURE", str(script))
    result = run_in_process(
        "unet-compare",
        "methods=[nearest,maxunpool]",
        "seeds=[0]",
        f"output={tmp_path / 'cmp'}",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.setup=[source /opt/unet/.venv/bin/activate]",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capfd,  # at the file descriptors: the sweep's process writes to them
    )
    assert script.is_file(), result.stderr[-3000:]
    text = script.read_text()
    for line in [
        "#SBATCH --array=0-1%2",  # one job per (method, seed)
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "source /opt/unet/.venv/bin/activate",
    ]:
        assert line in text.splitlines(), f"{line!r} not in the job script:\n{text}"
    assert re.search(r"^srun .* -m submitit\.core\._submit ", text, re.MULTILINE)
    # The jobs were never submitted: the comparison reports them as failed, not as missing.
    assert "fake sbatch: not submitted" in result.stderr
    report = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "nearest" in report and "maxunpool" in report
    assert not (tmp_path / "cmp" / ".hydra").exists()  # unet-compare's own Hydra files stay out of it


def test_optuna_sweeper_composes_with_our_search_space(optuna_plugin):
    cfg = train_with_hydra("hydra/sweeper=optuna_miou")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == OPTUNA_SWEEPER
    assert sweeper.direction == "maximize"
    assert sweeper.n_trials == 20
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == 42
    params = sweeper.params
    assert params["model.optimizer.lr"] == "tag(log, interval(1e-4, 1e-2))"
    assert params["model.net.base_channels"] == "choice(16, 32, 64)"
    upsample = re.fullmatch(r"choice\((.*)\)", params["model.upsample"]).group(1)
    assert {name.strip() for name in upsample.split(",")} == set(UPSAMPLERS)
    assert params["record_failures"] == "true"
    assert cfg.hydra.callbacks.nan_result_is_failure._target_ == "unet.training.sweeps.NanResultIsFailure"
    # The trials can be SLURM jobs too.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = train_with_hydra("hydra/sweeper=optuna_miou", "hydra/launcher=slurm")
    assert (cfg.hydra.sweeper._target_, cfg.hydra.launcher._target_) == (OPTUNA_SWEEPER, SLURM_LAUNCHER)


def test_nan_result_becomes_a_failed_job(tmp_path):
    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    failed = JobReturn(status=JobStatus.COMPLETED, _return_value=math.nan)
    NanResultIsFailure().on_job_end(config, failed)
    assert failed.status == JobStatus.FAILED
    with pytest.raises(FailedRunError, match=re.escape(str(tmp_path))):
        failed.return_value  # noqa: B018 -- reading it raises, as Hydra's sweepers do
    scored = JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)
    NanResultIsFailure().on_job_end(config, scored)
    assert (scored.status, scored.return_value) == (JobStatus.COMPLETED, 0.5)


def test_optuna_search_end_to_end_with_a_failing_trial(optuna_plugin, tmp_path, monkeypatch, capsys):
    """Four tiny trials; dropout 1.5 makes a trial fail, which the search records and survives."""
    sweep_dir = tmp_path / "search"
    result = run_in_process(
        "unet-train",
        "-m",
        "hydra/sweeper=optuna_miou",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={sweep_dir}",
        "model.net.dropout=choice(0.0,1.5)",
        *replacing(TINY_RUN, *TINY_NET, "data.num_train=16", "trainer.max_epochs=1"),  # one step a trial
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    # base_channels and lr are fixed by TINY_RUN, so they are not searched.
    assert set(results["best_params"]) == {"model.upsample", "model.net.dropout"}
    assert results["best_params"]["model.net.dropout"] == 0.0
    assert results["best_params"]["model.upsample"] in UPSAMPLERS
    trials = sorted(path for path in sweep_dir.iterdir() if path.is_dir())
    assert len(trials) == 4
    configs = {trial: yaml.safe_load((trial / "config.yaml").read_text()) for trial in trials}
    assert all(config["record_failures"] for config in configs.values())
    # Exactly the trials that drew dropout 1.5 fail (which ones depends on the sampler's seed and the
    # size of the search space, i.e. the number of registered methods); the others are scored.
    broken = {trial for trial, config in configs.items() if config["model"]["net"]["dropout"] == 1.5}
    failed = {trial for trial in trials if (trial / "error.json").exists()}
    scored = {trial for trial in trials if (trial / "metrics.json").exists()}
    assert failed == broken and scored == set(trials) - broken, sorted(trial.name for trial in failed)
    assert failed and scored, "the search should hold both a failed and a scored trial"
    best = max(json.loads((trial / "metrics.json").read_text())["val/miou"] for trial in scored)
    assert results["best_value"] == pytest.approx(best)
