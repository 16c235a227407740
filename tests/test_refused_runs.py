"""A run refused for the user's config or data before its first checkpoint leaves no outputs that look
like a run's (config.yaml, plan.json, tensorboard/), and never removes what was there before."""

from __future__ import annotations

import os

import pytest
from conftest import TINY_RUN, replacing

from unet.training.run import train
from unet.utils.config import compose_config
from unet.utils.errors import ConfigError, TrainingDivergedError, UserError
from unet.utils.files import removed_if_refused


def test_a_negative_learning_rate_leaves_only_what_was_there(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("the user's notes\n")
    cfg = compose_config(
        "train",
        [f"paths.output_dir={run}", *replacing(TINY_RUN, "model.optimizer.lr=-1", "trainer.max_steps=1")],
    )
    with pytest.raises(ConfigError, match="Invalid learning rate: -1"):
        train(cfg)
    assert os.listdir(run) == ["notes.txt"]
    assert (run / "notes.txt").read_text() == "the user's notes\n"


def test_outputs_stay_once_the_run_wrote_a_checkpoint_after_a_divergence_and_for_our_bugs(tmp_path):
    with pytest.raises(UserError), removed_if_refused(tmp_path, kept_once="checkpoints"):
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "config.yaml").write_text("")
        raise UserError("diverged at step 9")
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "config.yaml"]
    with (
        pytest.raises(TrainingDivergedError),
        removed_if_refused(tmp_path / "nan", "checkpoints", (TrainingDivergedError,)),
    ):
        (tmp_path / "nan").mkdir()
        (tmp_path / "nan" / "tensorboard").mkdir()
        raise TrainingDivergedError("the loss became nan at global step 1")
    assert os.listdir(tmp_path / "nan") == ["tensorboard"]
    with pytest.raises(KeyError), removed_if_refused(tmp_path / "other", kept_once="checkpoints"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.yaml").write_text("")
        raise KeyError("a bug of ours: its traces stay for the report")
    assert os.listdir(tmp_path / "other") == ["config.yaml"]
