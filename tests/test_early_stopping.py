"""``callbacks=early_stopping`` with every way a run can end: it checks only after a validation."""

from __future__ import annotations

import json

import torch
from conftest import TINY_NET, TINY_RUN, replacing

from unet.training.run import train
from unet.utils.config import compose_config


def test_a_run_with_early_stopping_may_end_by_max_steps_mid_epoch(tmp_path):
    # Four steps an epoch: the run ends two steps into its first epoch, before any validation ran.
    cfg = compose_config(
        "train",
        [
            f"paths.output_dir={tmp_path}",
            *replacing(TINY_RUN, *TINY_NET),
            "callbacks=early_stopping",
            "trainer.max_steps=2",
        ],
    )
    metrics = train(cfg)
    assert 0.0 <= metrics["val/miou"] <= 1.0
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
