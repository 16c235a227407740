"""The validation budget: a large validation split scored on a fixed, seeded subset during training and
in full at the end, the subset planned from validation's cost, and a run summary that says when
validation took over 1.5x its planned share, and why."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_RUN
from test_planning import ALL_AUTO, fingerprint, machine, plan_for
from test_run_summary import FakeClock, drive_epoch, fake_trainer

from unet.data import SyntheticDataModule
from unet.data.errors import DataError
from unet.evaluation.per_image import read_per_image
from unet.models.networks import network_config
from unet.planning import Plan
from unet.planning.rules import (
    MIN_VAL_SUBSET,
    MIN_VALIDATIONS,
    VAL_OVERHEAD_S,
    VAL_SHARE,
    PlanInputs,
    make_plan,
)
from unet.planning.speed import ValidationTiming, forget_measurements, validation_seconds
from unet.profiling.machine import machine_name
from unet.training.callbacks.run_summary import RunSummary
from unet.training.run import forget_speed_off_plan, train


def synthetic(**options) -> SyntheticDataModule:
    return SyntheticDataModule(num_train=4, num_val=20, num_test=0, image_size=8, num_workers=0, **options)


def test_the_subset_is_the_same_images_at_every_validation_and_drawn_by_the_seed():
    datamodule = synthetic(val_subset=5, seed=3)
    first = datamodule.val_subset_indices()
    assert len(first) == 5 == len(set(first)) and first == sorted(first)
    assert datamodule.val_subset_indices() == first == synthetic(val_subset=5, seed=3).val_subset_indices()
    assert synthetic(val_subset=5, seed=4).val_subset_indices() != first
    served = [len(masks) for _, masks in datamodule.dataloader("val", subset=True)]
    assert sum(served) == 5
    assert sum(len(masks) for _, masks in datamodule.dataloader("val")) == 20  # outside training: all


def test_no_subset_or_one_as_large_as_the_split_scores_every_image():
    assert synthetic().val_subset_indices() is None
    assert synthetic(val_subset=20).val_subset_indices() is None
    with pytest.raises(DataError, match="val_subset must be >= 1"):
        synthetic(val_subset=0)


def test_a_run_validates_on_the_subset_and_reports_the_whole_split(compose_config, tmp_path):
    cfg = compose_config("train", *TINY_RUN, "data.num_val=12", "data.val_subset=4", "data.num_test=0")
    metrics = train(cfg)

    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary["validations"] == cfg.trainer.max_epochs
    assert summary["validation_samples"] == 4 * cfg.trainer.max_epochs  # the subset at every validation
    assert metrics["val_images"] == 12 and metrics["val_subset_images"] == 4
    rows = read_per_image(tmp_path / "per_image.csv")
    assert [row["image"] for row in rows if row["split"] == "val"] == [f"val_{index}" for index in range(12)]
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_the_planned_subset_shrinks_when_validation_is_expensive():
    data = fingerprint(images=300, size=(360, 480), channels=3, fractions=(0.7, 0.3), widths=(30.0, 20.0))
    fast = plan_for(data, budget_s=1200, val_images=400, rates=machine(fp32=40, bf16=40))
    slow = plan_for(data, budget_s=1200, val_images=400, rates=machine(fp32=4, bf16=4))
    assert MIN_VAL_SUBSET <= slow.value("data.val_subset") < fast.value("data.val_subset") < 400
    assert "fixed, seeded" in slow.choices["data.val_subset"].reason
    # each validation during training fits its share of the budget, with the subset
    for plan in (fast, slow):
        assert plan.facts["validation_images_per_pass"] == plan.value("data.val_subset")
        assert plan.facts["validation_s"] <= VAL_SHARE * 1200 / MIN_VALIDATIONS * 1.01
    cheap = plan_for(data, budget_s=1200, val_images=10, rates=machine(fp32=40, bf16=40))
    assert cheap.value("data.val_subset") is None
    assert plan_for(data, budget_s=None, val_images=400).value("data.val_subset") is None


def test_the_plan_prices_validation_from_the_time_it_measured_for_one_image():
    data = fingerprint(images=300, size=(360, 480), channels=3, fractions=(0.7, 0.3), widths=(30.0, 20.0))
    inputs = PlanInputs(fingerprint=data, val_images=100, device="cpu", budget_s=1200)
    asked = []

    def timer(seconds: float):
        def measured(net_values, scale, precision, layout) -> float:
            asked.append((scale, precision, layout))
            return seconds

        return measured

    quick = make_plan(inputs, ALL_AUTO, machine(), timer(0.05))
    slow = make_plan(inputs, ALL_AUTO, machine(), timer(0.5))
    assert quick.value("data.val_subset") is None  # 100 images at 0.05 s fit 15 s
    assert MIN_VAL_SUBSET <= slow.value("data.val_subset") < 100
    assert slow.facts["validation_image_predict_s"] == 0.5
    # the measured time holds the scoring too (it grows with the classes): nothing is added per pixel
    assert slow.facts["validation_s"] == pytest.approx(
        VAL_OVERHEAD_S + slow.value("data.val_subset") * 0.5, abs=1e-3
    )
    # measured once per plan, at the resolution, precision and layout the run trains with
    assert (
        asked
        == [
            (
                slow.value("data.train_scale"),
                slow.value("trainer.precision"),
                slow.value("model.memory_format"),
            )
        ]
        * 2
    )


def summary_of(
    tmp_path, planned_share: float, planned_pass_s: float, val_s: float, steps: int = 3, step_s=None
) -> dict:
    """Two epochs of ``steps`` training steps of 2 s (planned ``step_s``), each followed by a validation of
    2 batches of ``val_s``."""
    clock = FakeClock()
    callback, trainer = RunSummary(str(tmp_path / "run_summary.json")), fake_trainer()
    callback.plan_validation(planned_share, planned_pass_s, step_s)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("unet.training.callbacks.run_summary.time.perf_counter", clock)
        callback.on_fit_start(trainer, None)
        for _ in range(2):
            drive_epoch(
                callback, trainer, clock, batches=steps, data_s=0.0, train_s=2.0,
                val_batches=2, val_data_s=0.0, val_s=val_s,
            )  # fmt: skip
        callback.on_fit_end(trainer, None)
    return json.loads((tmp_path / "run_summary.json").read_text())


def test_the_summary_says_when_validation_took_over_its_planned_share_and_why(tmp_path, caplog):
    # validation 2 x (0.25 + 2 x 3 s) = 12.5 s of 29.5 s: 42 %, planned 10 % at 1 s per pass
    with caplog.at_level(logging.INFO, logger="unet.training.callbacks.run_summary"):
        summary = summary_of(tmp_path, planned_share=0.10, planned_pass_s=1.0, val_s=3.0)
    assert summary["validation_over_plan"]
    assert summary["planned_validation_share"] == 0.1 and summary["planned_validation_pass_s"] == 1.0
    assert summary["validation_pass_s"] == 6.25
    assert (
        "Validation took 42 % of the run, planned 10 %: each pass took 6.2 s, planned 1.0 s; "
        "the training between two took 6.0 s, planned 9.0 s"
    ) in summary["text"]
    assert any(r.levelno == logging.WARNING and "planned 10 %" in r.message for r in caplog.records)


def test_a_validation_share_within_1_5x_of_the_plan_is_not_flagged(tmp_path):
    # validation 2 x (0.25 + 2 x 0.25 s) = 1.5 s of 18.5 s: 8 %, planned 8 %
    summary = summary_of(tmp_path, planned_share=0.08, planned_pass_s=0.75, val_s=0.25)
    assert not summary["validation_over_plan"] and "planned" not in summary["text"]
    assert summary["planned_validation_share"] == 0.08


@pytest.mark.parametrize(("planned_step_s", "direction"), [(1.0, "slower"), (4.0, "faster")])
def test_steps_far_off_the_planned_speed_are_said_with_both_times(tmp_path, planned_step_s, direction):
    # 2 x 12 steps of 2 s: twice the planned 1 s, or half the planned 4 s
    summary = summary_of(tmp_path, 0.1, 1.0, val_s=0.25, steps=12, step_s=planned_step_s)
    assert summary["step_off_plan"] == direction and summary["step_s"] == 2.0
    assert summary["planned_step_s"] == planned_step_s
    assert f"Training steps took 2 s, planned {planned_step_s:g} s" in summary["text"]
    assert ("drops this machine's cached speeds" in summary["text"]) == (direction == "faster")


def test_steps_near_the_planned_speed_or_too_few_to_judge_are_not_flagged(tmp_path):
    assert not summary_of(tmp_path, 0.1, 1.0, val_s=0.25, steps=12, step_s=1.5)["step_off_plan"]
    few = summary_of(tmp_path, 0.1, 1.0, val_s=0.25, steps=3, step_s=0.5)  # 6 steps: warm-up may dominate
    assert not few["step_off_plan"] and few["step_s"] == 2.0


def test_a_run_faster_than_planned_drops_this_machines_cached_speeds_only(tmp_path):
    config = network_config(
        {"_target_": "unet.models.UNet", "base_channels": 4, "depth": 2}, 1, 2, "bilinear"
    )
    timing = ValidationTiming(config, 20, 28, "cpu")
    validation_seconds(timing, tmp_path)
    other = {"key": "x", "identity": {"machine": "another CPU", "torch": torch.__version__}, "rates": {}}
    (tmp_path / "speed" / "other.json").write_text(json.dumps(other))
    summary = RunSummary(str(tmp_path / "run_summary.json"))
    trainer = SimpleNamespace(callbacks=[summary])
    plan = Plan({}, {"device": machine_name("cpu")})

    for on_or_slower in (None, "slower"):  # a slow run may be its own load: measuring again would not help
        summary.last_summary = {"step_off_plan": on_or_slower}
        forget_speed_off_plan(trainer, plan, str(tmp_path))
        assert validation_seconds(timing, tmp_path)[1]  # still cached

    summary.last_summary = {"step_off_plan": "faster"}
    forget_speed_off_plan(trainer, plan, str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "speed").iterdir()) == ["other.json"]  # another machine's stays
    assert not validation_seconds(timing, tmp_path)[1]  # measured again
    assert forget_measurements(None, machine_name("cpu")) == 0  # no cache: nothing to drop


def test_a_validation_image_is_timed_once_per_machine_and_network_then_read_from_the_cache(tmp_path):
    config = network_config(
        {"_target_": "unet.models.UNet", "base_channels": 4, "depth": 2}, 1, 2, "bilinear"
    )
    timing = ValidationTiming({**config, "input_scale": 0.5}, 20, 28, "cpu")
    seconds, cached = validation_seconds(timing, tmp_path)
    assert seconds > 0 and not cached
    assert validation_seconds(timing, tmp_path) == (seconds, True)
    assert not validation_seconds(ValidationTiming(config, 20, 28, "cpu"), tmp_path)[1]  # another scale


def test_a_training_set_smaller_than_a_batch_gets_sampled_epochs_even_when_validation_is_cheap():
    """9 small images and a batch of 32 crops: one pass drops its only, partial batch, so the plan must
    sample epochs however often cheap validation would allow (the data check refuses an empty epoch)."""
    data = fingerprint(images=9, size=(64, 64))
    inputs = PlanInputs(fingerprint=data, val_images=3, device="cpu", budget_s=90)
    plan = make_plan(inputs, {**ALL_AUTO, "augment.crop": 64}, machine(), lambda *timed: 1e-4)
    batch, epoch_size = plan.value("data.batch_size"), plan.value("data.epoch_size")
    assert batch > 9 and epoch_size is not None and epoch_size >= batch
