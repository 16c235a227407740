"""The run summary: where a run's wall time went, its parts adding up, counts matching the run's."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_NET, TINY_RUN, replacing

from unet.training.callbacks.run_summary import VALIDATION_KEYS, RunSummary, format_duration
from unet.training.run import train


def test_a_real_run_writes_a_summary_that_adds_up_and_counts_its_steps(compose_config, tmp_path, caplog):
    # 40 samples in batches of 16: a short last batch, so samples are not simply steps x batch size
    cfg = compose_config("train", *replacing(TINY_RUN, *TINY_NET, "data.num_train=40"))
    with caplog.at_level(logging.INFO, logger="unet.training.callbacks.run_summary"):
        metrics = train(cfg)
    summary = json.loads((tmp_path / "run_summary.json").read_text())

    parts = summary["parts_s"]
    assert set(parts) == {"training", "validation", "data", "other"}
    assert all(value >= 0 for value in parts.values()), parts
    assert sum(parts.values()) == pytest.approx(summary["total_s"], abs=1e-3)
    assert summary["total_s"] > 0 and parts["training"] > 0 and parts["validation"] > 0

    epochs, batch_size, num_train = cfg.trainer.max_epochs, cfg.data.batch_size, cfg.data.num_train
    per_epoch = (num_train // batch_size) * batch_size if cfg.data.get("drop_last", False) else num_train
    steps_per_epoch = (
        num_train // batch_size if cfg.data.get("drop_last", False) else math.ceil(num_train / batch_size)
    )
    assert summary["optimizer_steps"] == metrics["global_step"] == epochs * steps_per_epoch
    assert summary["training_batches"] == summary["optimizer_steps"]
    assert summary["training_samples"] == epochs * per_epoch
    # one validation per epoch over the whole validation split; the sanity check and the final
    # validate/test of metrics.json are not counted
    assert summary["validations"] == epochs
    assert summary["validation_samples"] == epochs * cfg.data.num_val
    assert summary["fits"] == 1
    assert "optimizer steps" in summary["text"] and summary["text"] in caplog.text


class FakeClock:
    """``time.perf_counter`` under the test's control."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def fake_trainer(**overrides) -> SimpleNamespace:
    fields = dict(
        state=SimpleNamespace(fn="fit"),
        sanity_checking=False,
        world_size=1,
        is_global_zero=True,
        global_step=0,
        current_epoch=0,
        early_stopping_callback=None,
    )
    return SimpleNamespace(**{**fields, **overrides})


def drive_epoch(callback, trainer, clock, batches, data_s, train_s, val_batches, val_data_s, val_s) -> None:
    """One epoch by hand, as Lightning calls the hooks: batches (data wait, then step), then validation."""
    batch = (torch.zeros(4, 1, 8, 8), torch.zeros(4, 8, 8, dtype=torch.long))
    callback.on_train_epoch_start(trainer, None)
    for index in range(batches):
        clock.tick(data_s)
        callback.on_train_batch_start(trainer, None, batch, index)
        clock.tick(train_s)
        callback.on_train_batch_end(trainer, None, None, batch, index)
        trainer.global_step += 1
    clock.tick(0.5)  # epoch-end hooks: other
    callback.on_validation_start(trainer, None)
    clock.tick(0.25)  # switching to eval: validation
    callback.on_validation_epoch_start(trainer, None)
    for index in range(val_batches):
        clock.tick(val_data_s)
        callback.on_validation_batch_start(trainer, None, batch, index)
        clock.tick(val_s)
        callback.on_validation_batch_end(trainer, None, None, batch, index)
    callback.on_validation_end(trainer, None)
    clock.tick(2.0)  # a checkpoint: other
    callback.on_save_checkpoint(trainer, None, {})
    trainer.current_epoch += 1


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr("unet.training.callbacks.run_summary.time.perf_counter", clock)
    return clock


def test_the_hooks_split_the_time_into_parts_that_add_up(clock, tmp_path, caplog):
    callback, trainer = RunSummary(str(tmp_path / "run_summary.json")), fake_trainer()
    callback.on_fit_start(trainer, None)
    clock.tick(1.0)  # restoring, set-up: other
    callback.on_sanity_check_start(trainer, None)
    trainer.sanity_checking = True
    callback.on_validation_start(trainer, None)  # sanity validation: not a validation of the run
    clock.tick(3.0)
    callback.on_validation_end(trainer, None)
    trainer.sanity_checking = False
    callback.on_sanity_check_end(trainer, None)
    for _ in range(2):
        drive_epoch(
            callback,
            trainer,
            clock,
            batches=3,
            data_s=0.5,
            train_s=2.0,
            val_batches=2,
            val_data_s=0.25,
            val_s=1.0,
        )
    with caplog.at_level(logging.INFO, logger="unet.training.callbacks.run_summary"):
        callback.on_fit_end(trainer, None)

    summary = json.loads((tmp_path / "run_summary.json").read_text())
    # other: 1 s set-up, 3 s sanity check, per epoch 0.5 s epoch end and a 2 s checkpoint
    assert summary["parts_s"] == {"training": 12.0, "validation": 4.5, "data": 4.0, "other": 9.0}
    assert summary["total_s"] == 29.5
    assert summary["sanity_check_s"] == 3.0
    assert summary["optimizer_steps"] == 6 and summary["training_batches"] == 6
    assert summary["training_samples"] == 24
    assert (
        summary["validations"] == 2
        and summary["validation_batches"] == 4
        and summary["validation_samples"] == 16
    )
    assert not summary["validation_heavy"]  # 4.5 / 29.5 = 15 %
    assert summary["text"] == (
        "29.5 s: training 41 %, validation 15 %, data 14 %, other 31 %; "
        "6 optimizer steps, 24 training samples, 2 validations"
    )
    assert summary["text"] in caplog.text


def test_a_run_that_mostly_validates_says_so_and_names_the_keys_that_change_it(clock, tmp_path, caplog):
    callback, trainer = RunSummary(str(tmp_path / "run_summary.json")), fake_trainer()
    callback.on_fit_start(trainer, None)
    # the small-data case of issue #15: two steps, then a validation three times as long
    drive_epoch(
        callback, trainer, clock, batches=2, data_s=0.0, train_s=1.0, val_batches=6, val_data_s=0.0, val_s=1.0
    )
    with caplog.at_level(logging.INFO, logger="unet.training.callbacks.run_summary"):
        callback.on_fit_end(trainer, None)
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary["validation_heavy"]
    assert "Validation took" in summary["text"] and all(key in summary["text"] for key in VALIDATION_KEYS)
    assert any(
        record.levelno == logging.WARNING and "Validation took" in record.message for record in caplog.records
    )


def test_validation_outside_fit_and_other_ranks_are_left_alone(clock, tmp_path):
    callback = RunSummary(str(tmp_path / "run_summary.json"))
    trainer = fake_trainer(state=SimpleNamespace(fn="validate"))
    callback.on_validation_start(trainer, None)
    clock.tick(5.0)
    callback.on_validation_end(trainer, None)
    assert callback.counts["validations"] == 0 and callback.totals["validation_s"] == 0.0

    worker = fake_trainer(is_global_zero=False)
    callback.on_fit_start(worker, None)
    callback.on_fit_end(worker, None)
    assert not (tmp_path / "run_summary.json").exists()


def test_a_resumed_run_summarises_the_whole_run(clock, tmp_path):
    first, trainer = RunSummary(str(tmp_path / "run_summary.json")), fake_trainer()
    first.on_fit_start(trainer, None)
    drive_epoch(
        first, trainer, clock, batches=3, data_s=0.5, train_s=2.0, val_batches=2, val_data_s=0.25, val_s=1.0
    )
    state = first.state_dict()  # what last.ckpt holds
    clock.tick(60.0)  # killed; the time after the checkpoint is lost

    resumed = RunSummary(str(tmp_path / "run_summary.json"))
    resumed.load_state_dict(state)
    resumed.on_fit_start(trainer, None)
    drive_epoch(
        resumed, trainer, clock, batches=3, data_s=0.5, train_s=2.0, val_batches=2, val_data_s=0.25, val_s=1.0
    )
    resumed.on_fit_end(trainer, None)

    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary["parts_s"] == {"training": 12.0, "validation": 4.5, "data": 4.0, "other": 5.0}
    assert summary["total_s"] == 25.5
    assert summary["training_samples"] == 24 and summary["validations"] == 2 and summary["fits"] == 2
    assert summary["optimizer_steps"] == 6


@pytest.mark.parametrize(
    ("seconds", "text"), [(3.24, "3.2 s"), (872.0, "14 min 32 s"), (7500.0, "2 h 05 min")]
)
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert format_duration(seconds) == text
