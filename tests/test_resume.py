"""Resuming tells the truth: it continues the run exactly from any checkpoint, and changed settings are
refused or applied as documented, never dropped while config.yaml claims them."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_NET, TINY_RUN, replacing, run_in_process

from unet.training.callbacks import LastCheckpoint
from unet.training.run import train
from unet.utils.config import compose_config

# 4 steps per epoch; the run ends by its step limit at the end of its second epoch (a step-limited run is
# what Lightning resumes from an epoch's end differently from an epoch-limited one). Dropout and the
# synthetic preset's augmentation draw random numbers at every step.
STEP_LIMITED_RUN = [
    *replacing(TINY_RUN, *TINY_NET), "model.net.dropout=0.1", "trainer.deterministic=true", "test=false",
    "trainer.max_epochs=3", "trainer.max_steps=8", "model.optimizer.lr=1e-2",
    "callbacks.last_checkpoint.every_minutes=1e-9",  # last.ckpt at every step too
]  # fmt: skip


def without_times(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "time_s"} for r in json.loads((run / "history.json").read_text())
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """STEP_LIMITED_RUN trained through, with copies of its directory as a SIGKILL would have left it just
    after last.ckpt was written at step 4 (epoch 0's end) and at step 6 (mid-epoch, the timed save).

    Returns the finished run's directory and the copies, by kind.
    """
    base = tmp_path_factory.mktemp("uninterrupted")
    run_dir = base / "run"
    copies = {"epoch end": base / "epoch-end", "mid-epoch": base / "mid-epoch"}
    save = LastCheckpoint.save

    def save_and_copy(self: LastCheckpoint, trainer) -> None:
        save(self, trainer)
        kind = {4: "epoch end", 6: "mid-epoch"}.get(trainer.global_step)
        if kind is not None:  # at step 4 the epoch end's save comes after the step's: the copy is its
            shutil.rmtree(copies[kind], ignore_errors=True)
            shutil.copytree(run_dir, copies[kind], ignore=shutil.ignore_patterns("run.lock", "tensorboard"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LastCheckpoint, "save", save_and_copy)
        train(compose_config("train", [f"paths.output_dir={run_dir}", *STEP_LIMITED_RUN]))
    return run_dir, copies


@pytest.mark.parametrize("kind", ["epoch end", "mid-epoch"])
def test_a_run_killed_after_any_last_checkpoint_resumes_to_the_uninterrupted_result(
    uninterrupted, kind, tmp_path
):
    """The copy is resumed in place (the run's own path: best.ckpt's record is kept only there)."""
    reference, copies = uninterrupted
    kept = tmp_path / "reference"
    shutil.move(reference, kept)
    try:
        shutil.copytree(copies[kind], reference)
        step = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        assert step == {"epoch end": 4, "mid-epoch": 6}[kind]
        train(compose_config("train", [f"paths.output_dir={reference}", *STEP_LIMITED_RUN, "ckpt_path=last"]))
        assert len(without_times(kept)) == 2
        assert without_times(reference) == without_times(kept)
        metrics = json.loads((reference / "metrics.json").read_text())
        assert metrics == json.loads((kept / "metrics.json").read_text())
    finally:
        shutil.rmtree(reference, ignore_errors=True)
        shutil.move(kept, reference)


def test_best_and_last_checkpoints_of_one_step_record_the_same_epoch(tmp_path):
    # No validation while training (every third epoch, in two): best.ckpt is the final weights, saved
    # after training, at last.ckpt's step.
    train(
        compose_config(
            "train",
            [
                f"paths.output_dir={tmp_path}",
                *replacing(TINY_RUN, *TINY_NET),
                "trainer.check_val_every_n_epoch=3",
                "test=false",
            ],
        )
    )
    best, last = (
        torch.load(tmp_path / "checkpoints" / f"{n}.ckpt", weights_only=True) for n in ("best", "last")
    )
    assert best["global_step"] == last["global_step"] == 8
    assert best["epoch"] == last["epoch"] == 1


# A finished run of 4 steps (one epoch), its learning rate logged at every step.
FINISHED_RUN = [
    *replacing(TINY_RUN, *TINY_NET), "test=false", "trainer.max_epochs=3", "trainer.max_steps=4", "model.optimizer.lr=1e-3",
    "logger=csv", "trainer.log_every_n_steps=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(compose_config("train", [f"paths.output_dir={run_dir}", *FINISHED_RUN]))
    return run_dir


def learning_rates(run_dir: Path) -> list[float]:
    """The learning rate of each training step in order, from the run's CSV logs (a resume logs in a
    version of its own)."""
    rates = []
    for log in sorted(run_dir.glob("csv/*/version_*/metrics.csv")):
        with log.open() as rows:
            rates += [float(row["lr-AdamW"]) for row in csv.DictReader(rows) if row["lr-AdamW"]]
    return rates


def test_resuming_with_another_learning_rate_and_length_is_refused_naming_each_change(
    finished_run, tmp_path, monkeypatch, capsys
):
    before = (finished_run / "config.yaml").read_text()
    result = run_in_process(
        "unet-train", *FINISHED_RUN, "model.optimizer.lr=5e-4", "trainer.max_steps=8", "ckpt_path=last",
        f"hydra.run.dir={finished_run}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "model.optimizer.lr: 0.001 in the checkpoint, 0.0005 in the config" in errors[0]
    assert "trainer.max_steps: 4 in the checkpoint, 8 in the config" in errors[0]
    assert "resume_changes=apply" in errors[0]
    assert (finished_run / "config.yaml").read_text() == before  # the record is the run's, unchanged


def test_resuming_with_changes_applied_trains_with_them_from_the_checkpoint_step(finished_run, tmp_path):
    """The new learning rate and length are those trained with (and recorded): the schedule starts again
    at the checkpoint's step 4 from the new rate, and decays to the new end at step 8."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    train(
        compose_config(
            "train",
            [f"paths.output_dir={run_dir}", *FINISHED_RUN, "model.optimizer.lr=5e-4", "trainer.max_steps=8",
             "ckpt_path=last", "resume_changes=apply"],
        )
    )  # fmt: skip

    def cosine(lr: float) -> list[float]:  # the default schedule over 4 steps: no warm-up, to 1 % of lr
        return [lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / 4))) for step in range(4)]

    assert learning_rates(run_dir) == pytest.approx(cosine(1e-3) + cosine(5e-4))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["optimizer"]["lr"] == 5e-4 and config["trainer"]["max_steps"] == 8
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
