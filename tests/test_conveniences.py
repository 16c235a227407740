"""Training conveniences: early stopping, the rich progress bar, SLURM auto-requeue, the Optuna search's
SQLite storage, the `export` extra's import error, and rich tables on a terminal."""

from __future__ import annotations

import io
import json
import os
import signal
import sys

import pytest
import yaml
from conftest import TINY_NET, TINY_RUN, replacing, run_in_process
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from test_reliability import (
    MID_EPOCH_STEP,
    RESUMABLE_RUN,
    STEPS_PER_EPOCH,
    saved_step,
    signal_held_run,
    start_held_run,
    wait_until_held,
)

from unet.export.quantize import onnx_logits
from unet.training.run import train
from unet.utils.extras import MissingExtraError
from unet.utils.tables import terminal_tables, text_table


def test_early_stopping_stops_a_run_that_stopped_improving(compose_config, tmp_path):
    # lr=0: val/miou cannot change, so with patience 1 the second validation ends the run.
    cfg = compose_config(
        "train", *replacing(TINY_RUN, *TINY_NET), "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
        "model.optimizer.lr=0", "trainer.max_epochs=6", "test=false",
    )  # fmt: skip
    assert {"last_checkpoint", "run_summary", "early_stopping"} <= set(cfg.callbacks)  # added to the defaults
    metrics = train(cfg)
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary["stopped_early_at_epoch"] == 1
    assert "stopped early at epoch 1" in summary["text"]
    assert metrics["epochs"] == 2 and summary["validations"] == 2  # not the 6 epochs asked for
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "checkpoints" / "best.ckpt").exists()


def test_the_default_progress_bar_is_rich(compose_config):
    assert isinstance(instantiate(compose_config("train").callbacks.progress_bar), RichProgressBar)


def test_a_missing_export_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(
        MissingExtraError, match=r'^onnxruntime is not installed: pip install "unet\[export\]"'
    ):
        onnx_logits(tmp_path / "model.onnx")


SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "unet-test",  # not "bash"/"interactive": Lightning takes it for a batch job
    "SLURM_NTASKS": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


def test_slurm_signal_saves_requeues_and_the_requeued_job_resumes(tmp_path, monkeypatch, capsys):
    """The first run is a subprocess: it gets the signal SLURM sends before the time limit.

    Slow: a command's start (importing torch and Lightning) under load; its 11 steps are a small part.
    """
    fake_bin, calls = tmp_path / "bin", tmp_path / "scontrol_calls.txt"
    fake_bin.mkdir()
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    env = {**SLURM_ENV, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    run_dir = tmp_path / "run"
    overrides = [*RESUMABLE_RUN, f"hydra.run.dir={run_dir}"]

    process, marker, output = start_held_run(run_dir, MID_EPOCH_STEP, *overrides, env=env)
    wait_until_held(marker, process, output)
    signal_held_run(
        process, marker, signal.SIGUSR1
    )  # what sbatch --signal=USR1@90 sends before the time limit
    assert process.wait(timeout=300) == 0, output.read_text()[-2000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    assert saved_step(run_dir) == MID_EPOCH_STEP  # the step the signal landed in
    assert not (run_dir / "metrics.json").exists()

    # SLURM restarts the same command with SLURM_RESTART_COUNT set: the run resumes in place, not refused.
    for variable, value in {**env, "SLURM_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(variable, value)
    resumed = run_in_process("unet-train", *overrides, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"resuming from {last}" in (run_dir / "train.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 2 * STEPS_PER_EPOCH  # continued from the saved step, not from 0
    assert calls.read_text().split() == ["requeue", "4242"]  # requeued once


# One epoch of two steps of a tiny network: a trial's result is all the search needs.
TINY_TRIAL = replacing(
    RESUMABLE_RUN, "trainer.max_epochs=1", "data.num_train=8", "data.num_val=4", "trainer.deterministic=false"
)


def test_optuna_storage_resumes_a_search(tmp_path, monkeypatch, capsys):
    optuna = pytest.importorskip("optuna", reason='Optuna is not installed (pip install -e ".[cluster]")')
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper is not installed")
    if int(optuna.__version__.split(".")[0]) < 4:
        pytest.skip('the sweeper storage needs Optuna 4: pip install --no-warn-conflicts "optuna>=4,<5"')
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def search(name: str, trials: int) -> dict:
        result = run_in_process(
            "unet-train", "-m", "hydra/sweeper=optuna_miou", f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.n_trials={trials}", f"hydra.sweep.dir={tmp_path / name}",
            *TINY_TRIAL,  # its model.net.base_channels fixed: the search's other keys vary
            cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return yaml.safe_load((tmp_path / name / "optimization_results.yaml").read_text())

    search("first", trials=1)
    results = search("second", trials=1)  # the same study: one more trial, the sampler sees both
    study = optuna.load_study(study_name="unet_miou", storage=storage)
    assert len(study.trials) == 2
    assert len([p for p in (tmp_path / "second").iterdir() if p.is_dir() and p.name.isdigit()]) == 1
    assert results["best_value"] == pytest.approx(max(t.value for t in study.trials))


def test_tables_are_drawn_with_rich_on_a_terminal_and_plain_in_a_pipe():
    pytest.importorskip("rich", reason="rich is not installed")
    columns = [("class", "class", "{}"), ("IoU", "iou", "{:.4f}")]
    records = [{"class": "membrane", "iou": 0.91234}, {"class": "mean", "iou": 0.8}]
    plain = text_table(columns, records, rule=True)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with terminal_tables(Terminal()) as drawn:
        styled = text_table(columns, records, rule=True)
    assert drawn and "\x1b[" in styled and "0.9123" in styled and "membrane" in styled
    with terminal_tables(io.StringIO()) as drawn:  # a pipe or a file: the plain text, unchanged
        assert not drawn and text_table(columns, records, rule=True) == plain
    assert text_table(columns, records, rule=True) == plain and "\x1b[" not in plain
