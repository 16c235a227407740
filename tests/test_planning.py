"""The training plan (``unet.planning``): rules that respond to the data, the budget and the measured speed;
values typed by the user win; the plan lands in the config (composed again with the plan's overrides),
``plan.json`` and ``unet-plan``'s output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_in_process
from omegaconf import OmegaConf
from PIL import Image

from unet.data.fingerprint import Fingerprint
from unet.planning import (
    AUTO,
    PLANNED_KEYS,
    RULES,
    PlanContext,
    PlanInputs,
    make_plan,
    plan_config,
    planned_config,
)
from unet.planning.configure import fixed_values
from unet.planning.rules import DEFAULT_EPOCHS, MIN_EPOCH_STEPS, MIN_PASSES
from unet.profiling import write_mitochondria_proxy
from unet.training.module import training_time_budget
from unet.training.run import build_trainer, train
from unet.utils.budget import max_time_seconds
from unet.utils.config import check_override_types, compose_config
from unet.utils.errors import ConfigError

ALL_AUTO = {key: AUTO for key in PLANNED_KEYS}


def fingerprint(
    images: int = 20,
    size: tuple[int, int] = (512, 512),
    channels: int = 1,
    fractions: tuple[float, ...] = (0.8, 0.2),
    widths: tuple[float, ...] = (40.0, 20.0),
) -> Fingerprint:
    """A fingerprint as unet.data.fingerprint would compute it for such a training set."""
    classes = len(fractions)
    return Fingerprint(
        images=images,
        channels=channels,
        class_names=tuple(f"c{i}" for i in range(classes)),
        height=(size[0], float(size[0]), size[0]),
        width=(size[1], float(size[1]), size[1]),
        distinct_sizes=1,
        mean=(0.4,) * channels,
        std=(0.2,) * channels,
        class_pixels=tuple(int(f * images * size[0] * size[1]) for f in fractions),
        class_fraction=fractions,
        objects=(10,) * classes,
        object_area=((10.0, 20.0, 30.0),) * classes,
        class_width=widths,
        ignore_fraction=0.0,
    )


def machine(fp32: float = 6.0, bf16: float = 12.0, channels_last: float = 1.3):
    """A machine's measured training images/s at the timed (batch, patch), per precision and layout."""
    timed = []

    def rates(net_values, batch, patch):
        timed.append((dict(net_values), batch, patch))
        return {
            "32-true/contiguous": fp32,
            "32-true/channels_last": fp32 * channels_last,
            "bf16-mixed/contiguous": bf16,
            "bf16-mixed/channels_last": bf16 * channels_last,
        }

    rates.timed = timed
    return rates


def plan_for(
    fp: Fingerprint, budget_s: float | None = 600, fixed=None, val_images: int = 5, rates=None, device="cpu"
):
    inputs = PlanInputs(fingerprint=fp, val_images=val_images, device=device, budget_s=budget_s)
    return make_plan(inputs, {**ALL_AUTO, **(fixed or {})}, rates or machine())


def test_a_tiny_set_gets_sampled_epochs_and_sparse_validation():
    plan = plan_for(fingerprint(images=20))
    batch, epoch_size = plan.value("data.batch_size"), plan.value("data.epoch_size")
    assert batch == 4 and plan.value("augment.crop") == 256
    assert epoch_size is not None and epoch_size // batch > 20 // batch  # more than one pass per epoch
    assert plan.value("trainer.check_val_every_n_epoch") == 1
    # the planned validation share: one validation per epoch of epoch_size crops
    facts = plan.facts
    share = facts["validation_s"] / (facts["validation_s"] + (epoch_size // batch) * facts["step_s"])
    assert share <= 0.15
    assert plan.value("trainer.max_epochs") == -1  # the time ends the run


def test_a_large_set_keeps_one_pass_per_epoch():
    plan = plan_for(fingerprint(images=400, size=(256, 256)), budget_s=3600, val_images=100)
    assert plan.value("data.epoch_size") is None


def test_validation_of_large_images_is_spread_further_apart():
    small = plan_for(fingerprint(), val_images=5).facts["steps_between_validations"]
    large = plan_for(fingerprint(), val_images=50).facts["steps_between_validations"]
    assert large > 5 * small


def test_large_objects_on_a_short_budget_train_at_lower_resolution():
    data = fingerprint(
        images=300, size=(720, 960), channels=3, fractions=(0.5, 0.3, 0.2), widths=(60, 40, 30)
    )
    short = plan_for(data, budget_s=600)
    assert short.value("data.train_scale") < 1
    long = plan_for(data, budget_s=600 * 50)
    assert long.value("data.train_scale") == 1.0
    # the crop is the device's 256 network pixels, or as much of the smallest side as the scale leaves
    scale = short.value("data.train_scale")
    assert short.value("augment.crop") * scale == min(256, int(720 * scale) // 16 * 16)
    assert long.value("augment.crop") == 256
    # smaller network patches, more of them per step
    assert short.value("data.batch_size") > long.value("data.batch_size") == 4


def test_thin_structures_keep_full_resolution_whatever_the_budget():
    data = fingerprint(images=300, size=(720, 960), widths=(60.0, 2.0))
    plan = plan_for(data, budget_s=60)
    assert plan.value("data.train_scale") == 1.0
    assert plan.facts["passes_over_training_pixels"] < MIN_PASSES


def test_epoch_budget_keeps_full_resolution_and_one_pass_epochs():
    plan = plan_for(fingerprint(images=2000, size=(64, 64)), budget_s=None, val_images=200)
    assert plan.value("data.train_scale") == 1.0 and plan.value("data.epoch_size") is None
    assert plan.value("trainer.max_epochs") == 20


def test_epoch_budget_on_a_tiny_set_counts_epochs_of_sampled_crops():
    plan = plan_for(fingerprint(images=20), budget_s=None)
    assert plan.value("trainer.max_epochs") == 20
    assert plan.value("data.epoch_size") // plan.value("data.batch_size") >= MIN_EPOCH_STEPS


def test_small_batches_get_group_norm():
    assert plan_for(fingerprint()).value("model.net.norm") == "batch"
    plan = plan_for(fingerprint(), fixed={"data.batch_size": 2})
    assert plan.value("data.batch_size") == 2 and plan.value("model.net.norm") == "group"
    assert not plan.choices["data.batch_size"].planned and plan.choices["model.net.norm"].planned


def test_precision_and_layout_follow_the_measured_speed():
    fast_bf16 = plan_for(fingerprint(), rates=machine(fp32=6, bf16=11, channels_last=1.3))
    assert fast_bf16.value("trainer.precision") == "bf16-mixed"
    assert fast_bf16.value("model.memory_format") == "channels_last"
    slow_bf16 = plan_for(fingerprint(), rates=machine(fp32=6, bf16=0.1, channels_last=1.0))
    assert slow_bf16.value("trainer.precision") == "32-true"
    assert slow_bf16.value("model.memory_format") == "contiguous"
    # a faster machine sees the data more often in the same budget
    faster = plan_for(fingerprint(), rates=machine(fp32=60, bf16=120))
    assert faster.facts["passes_over_training_pixels"] > 5 * fast_bf16.facts["passes_over_training_pixels"]


def test_what_the_user_typed_wins_and_is_marked_so():
    rates = machine()
    fixed = {"trainer.precision": "32-true", "augment.crop": 128, "model.net.base_channels": 24}
    plan = plan_for(fingerprint(), fixed=fixed, rates=rates)
    for key, value in fixed.items():
        assert plan.value(key) == value and not plan.choices[key].planned
    assert rates.timed[0][0]["base_channels"] == 24  # the network timed is the one that will train
    assert plan.value("model.memory_format") == "channels_last"  # fp32's better layout


def test_a_typed_crop_sizes_the_batch_and_the_timed_patch():
    rates = machine()
    plan = plan_for(fingerprint(), fixed={"augment.crop": 128}, rates=rates)
    assert plan.value("data.batch_size") == 16 and rates.timed[0][1:] == (16, 128)


def test_keys_the_config_lacks_are_not_planned():
    fixed = {key: AUTO for key in PLANNED_KEYS if not key.startswith("model.net.")}
    plan = make_plan(PlanInputs(fingerprint(), 5, "cpu", 600), fixed, machine())
    assert not any(key.startswith("model.net.") for key in plan.choices)


def test_class_weights_and_rare_crops_respond_to_class_frequencies():
    balanced = plan_for(fingerprint(fractions=(0.6, 0.4), widths=(9.0, 9.0)))
    assert (
        balanced.value("model.loss.class_weights") is None and balanced.value("data.rare_class_crop_p") == 0
    )
    skewed = plan_for(fingerprint(fractions=(0.9, 0.09, 0.01), widths=(9.0, 9.0, 9.0)))
    assert skewed.value("model.loss.class_weights") == "inverse_sqrt"
    assert skewed.value("data.rare_class_crop_p") == 0  # the weights already count the rare class more
    # classes of a few percent each are learnt without weights; two classes never get them
    shapes = plan_for(fingerprint(fractions=(0.82, 0.06, 0.06, 0.06), widths=(9.0,) * 4))
    assert shapes.value("model.loss.class_weights") is None
    binary = plan_for(fingerprint(fractions=(0.995, 0.005), widths=(9.0, 9.0)))
    assert binary.value("model.loss.class_weights") is None and binary.value("data.rare_class_crop_p") > 0


def test_a_gpu_plan_is_wider_with_larger_patches():
    gpu = machine(fp32=40, bf16=120)
    plan = plan_for(fingerprint(size=(1024, 1024)), budget_s=60, device="cuda", rates=gpu)
    assert plan.value("model.net.base_channels") == 32 and plan.value("augment.crop") == 512
    assert plan.value("model.net.depth") == 5


def test_time_budgets_are_read_once_into_seconds():
    assert max_time_seconds("00:00:10:00") == 600
    assert max_time_seconds("01:02:00:30") == 86400 + 7200 + 30
    assert max_time_seconds({"minutes": 5}) == 300
    assert max_time_seconds(90) == 90 and max_time_seconds(2.5) == 2.5
    assert max_time_seconds(None) is None
    with pytest.raises(ValueError, match="DD:HH:MM:SS"):
        max_time_seconds("10:00")


@pytest.mark.parametrize("value", ["10:00", "abc", {"weeks": 1}, {"minutes": "x"}, 0, -5, True, [300]])
def test_a_bad_time_budget_is_one_config_error_naming_the_key_and_the_forms(value):
    with pytest.raises(ConfigError, match=r"^trainer\.max_time=.*: expected .*seconds \(300\), DD:HH:MM:SS"):
        max_time_seconds(value)


def test_a_budget_in_seconds_passes_the_command_line_checks():
    """``trainer.max_time=90`` is seconds, not a type error against Lightning's annotation (str, timedelta,
    dict); a value of no accepted form is refused before any work."""
    check_override_types(compose_config("train", ["trainer.max_time=90"]), ["trainer.max_time=90"])
    with pytest.raises(ConfigError, match="trainer.max_time='1:30'"):
        check_override_types(
            compose_config("train", ["trainer.max_time='1:30'"]), ["trainer.max_time='1:30'"]
        )


# --- each rule alone: a function of the context ---------------------------------------------------------


def context_for(
    fp: Fingerprint, fixed=None, budget_s: float | None = 600, device="cpu", rates=None, scale=2
) -> PlanContext:
    """What a rule reads: every key ``auto`` except ``fixed`` (typed, or decided by an earlier rule)."""
    inputs = PlanInputs(fingerprint=fp, val_images=5, device=device, budget_s=budget_s, scale=scale)
    return PlanContext(inputs, {**ALL_AUTO, **(fixed or {})}, rates or machine())


def test_the_rules_decide_in_the_order_of_the_planned_keys():
    assert tuple(RULES) == PLANNED_KEYS
    assert PLANNED_KEYS.index("augment.crop") < PLANNED_KEYS.index("data.batch_size")
    assert PLANNED_KEYS.index("data.batch_size") < PLANNED_KEYS.index("model.net.norm")


def test_epochs_kind_and_width_follow_the_budget_the_channels_and_the_device():
    fp = fingerprint()
    assert RULES["trainer.max_epochs"](context_for(fp)) == (-1, "unbounded: the time budget ends the run")
    assert RULES["trainer.max_epochs"](context_for(fp, budget_s=None))[0] == DEFAULT_EPOCHS
    assert RULES["augment.kind"](context_for(fp))[0] == "microscopy"
    assert RULES["augment.kind"](context_for(fingerprint(channels=3), budget_s=None))[0] == "natural"
    assert RULES["model.net.base_channels"](context_for(fp, budget_s=None, device="cuda")) == (
        32,
        "on CUDA, 32: more steps in the budget beat a wider network",
    )


def test_photographs_seen_under_min_passes_times_get_crops_and_flips_only():
    """Jitter pays once a run could overfit its images; a short budget gets ``natural_flip``, a budget that
    sees the pixels MIN_PASSES times or more (or an epochs budget of as many) the full ``natural``."""
    photos = fingerprint(channels=3, images=300, size=(360, 480))
    short = context_for(photos, budget_s=600)
    passes = short.planned_passes
    assert 0 < passes < MIN_PASSES
    kind, why = RULES["augment.kind"](short)
    assert kind == "natural_flip" and f"about {passes:.1f} times in the budget, under {MIN_PASSES}" in why
    long = context_for(photos, budget_s=600 * 1.2 * MIN_PASSES / passes)
    assert long.planned_passes >= MIN_PASSES and RULES["augment.kind"](long)[0] == "natural"
    few_epochs = context_for(photos, {"trainer.max_epochs": MIN_PASSES - 1}, budget_s=None)
    assert RULES["augment.kind"](few_epochs)[0] == "natural_flip"
    # The rule reads the resolution decided before it: at half the scale the budget sees the pixels more often.
    assert context_for(photos, {"data.train_scale": 0.5}, budget_s=600).planned_passes > passes


def test_depth_fits_the_timed_patch_without_measuring_anything():
    rates = machine()
    assert RULES["model.net.depth"](context_for(fingerprint(), rates=rates)) == (
        4,
        "4 levels: a 256-pixel patch keeps a bottleneck of 16 pixels (at most 4 levels on CPU)",
    )
    assert RULES["model.net.depth"](context_for(fingerprint(), {"augment.crop": 32}, rates=rates))[0] == 3
    assert RULES["model.net.depth"](context_for(fingerprint(), rates=rates, scale=4)) == (
        3,
        "3 levels: a 256-pixel patch keeps a bottleneck of 4 pixels (at most 4 levels on CPU; x4 per level)",
    )
    assert RULES["model.net.depth"](context_for(fingerprint(), rates=rates, scale=[4, 2]))[0] == 2
    assert rates.timed == []


def test_batch_and_norm_read_the_values_decided_before_them():
    fp = fingerprint()
    value, reason = RULES["data.batch_size"](context_for(fp, {"augment.crop": 128, "data.train_scale": 1.0}))
    assert value == 16 and "(128x128 patches)" in reason
    assert RULES["data.batch_size"](context_for(fp, {"augment.crop": 256, "data.train_scale": 0.5}))[0] == 16
    assert RULES["model.net.norm"](context_for(fp, {"data.batch_size": 2})) == (
        "group",
        "GroupNorm: 2 images per batch are too few for BatchNorm's statistics",
    )
    assert RULES["model.net.norm"](context_for(fp, {"data.batch_size": 4}))[0] == "batch"


def test_precision_rule_measures_once_at_the_network_decided_so_far():
    rates = machine(fp32=6, bf16=12)
    context = context_for(fingerprint(), {"model.net.base_channels": 16, "model.net.depth": 3}, rates=rates)
    value, reason = RULES["trainer.precision"](context)
    assert value == "bf16-mixed" and reason.startswith("bf16 autocast trains 2.00x as fast as fp32 here")
    assert RULES["model.memory_format"](context)[0] == "channels_last"
    assert rates.timed == [({"base_channels": 16, "depth": 3, "norm": "batch"}, 4, 256)]


def test_class_weights_rule_reads_only_the_class_frequencies():
    skewed = context_for(fingerprint(fractions=(0.9, 0.09, 0.01), widths=(9.0, 9.0, 9.0)))
    assert RULES["model.loss.class_weights"](skewed) == (
        "inverse_sqrt",
        "3 classes, the rarest at 1.00% of the pixels: inverse-square-root weights, the mildest that still "
        "lifts the rare classes (docs/results/class-weighting.md)",
    )
    assert RULES["data.rare_class_crop_p"](skewed)[0] == 0.33  # no weights decided in this context
    weighted = context_for(
        fingerprint(fractions=(0.9, 0.09, 0.01), widths=(9.0, 9.0, 9.0)),
        {"model.loss.class_weights": "capped"},
    )
    value, reason = RULES["data.rare_class_crop_p"](weighted)
    assert value == 0.0 and reason.startswith("plain random crops: the class weights already count")
    assert RULES["model.loss.class_weights"](context_for(fingerprint()))[0] is None


# --- the plan applied to a composed config, on a small real folder of images ---------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """12 gray 96x128 images with a disc each (binary masks 0/255), split 9/3 by val_fraction."""
    root = tmp_path_factory.mktemp("plan_data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :128]
    for index in range(12):
        cy, cx = rng.integers(30, 66), rng.integers(30, 98)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 20**2
        image = (disc * 150 + rng.integers(0, 60, (96, 128))).astype(np.uint8)
        for name, array in (("images", image), ("masks", disc.astype(np.uint8) * 255)):
            (root / name).mkdir(exist_ok=True)
            Image.fromarray(array).save(root / name / f"{index:02d}.png")
    return root


def folder_overrides(folder: Path) -> list[str]:
    return [
        "data=folder", f"data.root={folder}", "data.in_channels=1", "data.mask_mapping={0: 0, 255: 1}",
        "data.val_fraction=0.25", "trainer.accelerator=cpu", "model.net.base_channels=8",
    ]  # fmt: skip


def test_the_planned_config_holds_concrete_values(folder):
    cfg = compose_config("train", [*folder_overrides(folder), "trainer.max_time=00:00:02:00"])
    planned, plan = planned_config(cfg)
    assert plan is not None
    assert AUTO not in fixed_values(planned).values()  # every auto key was decided
    assert fixed_values(cfg)["data.batch_size"] == AUTO  # in a config composed again, not in the first
    resolved = OmegaConf.to_container(planned.data, resolve=True)
    assert planned.data.mean == pytest.approx([plan.value("data.mean")[0]], abs=1e-4)
    assert planned.augment.crop == 96 and resolved["train_transforms"][0]["_target_"].endswith("RandomCrop")
    assert planned.model.net.base_channels == 8 and not plan.choices["model.net.base_channels"].planned
    assert planned.trainer.max_epochs == -1 and plan.facts["training_images"] == 9
    assert plan_config(planned) is None  # nothing left to plan


def test_plan_overrides_reproduce_the_plan(folder, fixed_training_speed):
    """What unet-compare gives every run: composing with the plan's overrides plans nothing more."""
    overrides = [*folder_overrides(folder), "trainer.max_time=00:00:02:00"]
    planned, plan = planned_config(compose_config("train", overrides))
    again = compose_config("train", [*overrides, *plan.overrides()])
    assert fixed_values(again) == fixed_values(planned)
    assert plan_config(again) is None


def test_plan_overrides_compose_to_the_values_the_plan_decided(folder, fixed_training_speed):
    overrides = [*folder_overrides(folder), "trainer.max_time=00:00:02:00"]
    plan = plan_config(compose_config("train", overrides))
    assert "data/augment=microscopy" in plan.overrides()
    again = compose_config("train", [*overrides, *plan.overrides()])
    for key, value in plan.planned().items():
        if key != "augment.kind":
            assert _value(again, key) == value, key
    # the planned preset, loaded by Hydra from configs/data/augment/microscopy.yaml
    preset = compose_config("train", ["data=folder", "data/augment=microscopy", "augment.crop=96"])
    assert OmegaConf.to_container(again.augment.transforms, resolve=True) == OmegaConf.to_container(
        preset.augment.transforms, resolve=True
    )


@pytest.mark.parametrize(("epochs", "preset"), [(MIN_PASSES - 1, "natural_flip"), (MIN_PASSES, "natural")])
def test_rgb_data_composes_the_preset_its_passes_plan(folder, tmp_path, fixed_training_speed, epochs, preset):
    """Through the plan's overrides, RGB images seen under MIN_PASSES times train on crops and flips only."""
    rgb = tmp_path / "rgb"
    for name in ("images", "masks"):
        (rgb / name).mkdir(parents=True)
        for path in (folder / name).iterdir():
            image = Image.open(path)
            (image.convert("RGB") if name == "images" else image).save(rgb / name / path.name)
    overrides = [*folder_overrides(rgb), "data.in_channels=3", f"trainer.max_epochs={epochs}"]
    planned, plan = planned_config(compose_config("train", overrides))
    assert plan.value("augment.kind") == preset and f"data/augment={preset}" in plan.overrides()
    kinds = [t["_target_"] for t in OmegaConf.to_container(planned.data.train_transforms, resolve=True)]
    jitter = {"albumentations.RandomScale", "albumentations.ColorJitter"}
    assert "albumentations.RandomCrop" in kinds and "albumentations.HorizontalFlip" in kinds
    assert (jitter <= set(kinds)) == (preset == "natural") and (jitter & set(kinds) == set()) == (
        preset == "natural_flip"
    )


def _value(cfg, key: str):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def test_typed_values_win_over_the_plan_and_the_preset(folder, fixed_training_speed):
    typed = ["data.batch_size=2", "augment.crop=64", "trainer.max_time=00:00:02:00"]
    planned, plan = planned_config(compose_config("train", [*folder_overrides(folder), *typed]))
    assert planned.data.batch_size == 2 and not plan.choices["data.batch_size"].planned
    assert planned.augment.crop == 64 and not plan.choices["augment.crop"].planned  # over the preset's auto
    assert (
        planned.model.net.norm == "group" and plan.choices["model.net.norm"].planned
    )  # fits the typed batch
    crop = OmegaConf.to_container(planned.data.train_transforms, resolve=True)[0]
    assert crop["_target_"].endswith("RandomCrop") and crop["height"] == 64
    # a typed preset kind is loaded as the planned one would be
    natural, plan = planned_config(
        compose_config("train", [*folder_overrides(folder), "augment.kind=natural"])
    )
    assert not plan.choices["augment.kind"].planned and "data/augment=natural" in plan.overrides()
    assert natural.data.train_transforms[0]["_target_"] == "albumentations.RandomScale"


def test_a_budget_in_seconds_plans_and_bounds_the_trainer(folder, tmp_path, fixed_training_speed):
    """``trainer.max_time=90``: the plan sizes a 90 s run and Lightning's Trainer stops at 90 s."""
    cfg = compose_config(
        "train",
        [*folder_overrides(folder), "trainer.max_time=90", f"paths.output_dir={tmp_path}", "logger=csv"],
    )
    planned, plan = planned_config(cfg)
    assert plan.facts["budget_s"] == 90 and planned.trainer.max_epochs == -1
    assert planned.trainer.max_time == 90  # the config keeps what was typed
    assert training_time_budget(build_trainer(planned)) == 90


def test_a_config_changed_after_composing_is_not_planned_silently(folder, fixed_training_speed):
    """Planning composes the config again: a change made to the composed object would be lost."""
    cfg = compose_config("train", [*folder_overrides(folder), "trainer.max_time=00:00:02:00"])
    cfg.data.val_fraction = 0.5
    with pytest.raises(ValueError, match=r"changed \['data.val_fraction'\]"):
        planned_config(cfg)


def test_train_stores_the_plan_and_the_planned_config(folder, tmp_path, fixed_training_speed):
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "train",
        [*folder_overrides(folder), "trainer.max_epochs=1", "data.epoch_size=32", "model.net.depth=2",
         f"hydra.run.dir={run_dir}", f"paths.output_dir={run_dir}", "callbacks.progress_bar=null", "logger=csv"],
    )  # fmt: skip
    metrics = train(cfg)
    assert 0 <= metrics["val/miou"] <= 1
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    plan = json.loads((run_dir / "plan.json").read_text())
    planned = {c["key"]: c["value"] for c in plan["choices"] if c["planned"]}
    assert "trainer.max_epochs" not in planned and stored["trainer"]["max_epochs"] == 1  # typed, kept
    assert stored["data"]["batch_size"] == planned["data.batch_size"]
    assert stored["trainer"]["precision"] == planned["trainer.precision"]
    assert stored["data"]["train_transforms"][0]["height"] == planned["augment.crop"]  # the preset, resolved
    assert AUTO not in fixed_values(OmegaConf.create(stored)).values()
    summary = json.loads((run_dir / "run_summary.json").read_text())  # held to the plan's validation share
    assert summary["planned_validation_share"] == pytest.approx(plan["facts"]["validation_share"], abs=1e-4)


def test_unet_train_composes_its_config_again_with_the_plan(
    folder, tmp_path, fixed_training_speed, monkeypatch, capsys
):
    """Inside the Hydra app: the job's overrides and the plan's, composed again; a budget in seconds."""
    run_dir = tmp_path / "run"
    result = run_in_process(
        "unet-train", *folder_overrides(folder), "trainer.max_time=90", "augment.crop=64", "trainer=debug",
        "trainer.accelerator=cpu", "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    plan = json.loads((run_dir / "plan.json").read_text())
    planned = {c["key"]: c["value"] for c in plan["choices"] if c["planned"]}
    assert plan["facts"]["budget_s"] == 90 and stored["trainer"]["max_time"] == 90
    assert stored["data"]["batch_size"] == planned["data.batch_size"] and "augment.crop" not in planned
    assert stored["data"]["train_transforms"][0]["height"] == 64  # the typed crop in the planned preset
    assert AUTO not in fixed_values(OmegaConf.create(stored)).values()


def test_unet_plan_prints_every_planned_key_with_a_reason(folder, tmp_path, monkeypatch, capsys):
    """unet-plan's ``main`` in this process, with the budget of test_the_planned_config_holds_concrete_values:
    its speeds are measured here, or read from this worker's cache when that test measured them first."""
    result = run_in_process(
        "unet-plan", *folder_overrides(folder), "trainer.max_time=00:00:02:00",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for key in ("data.batch_size", "trainer.precision", "data.epoch_size", "augment.crop", "data.mean"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(key))
        assert "plan" in line.split() and len(line.split()) > 3
    assert "model.net.base_channels" in result.stdout and "config" in result.stdout


def test_the_mitochondria_proxy_gets_sampled_epochs_and_sparse_validation(tmp_path, fixed_training_speed):
    """The README's proxy (few large images, binary 0/255 masks), typed as a user would: an epoch is many
    sampled crops with one validation after it, not a pass of 5 steps followed by a validation."""
    root = write_mitochondria_proxy(tmp_path / "proxy")
    assert [len(list((root / split / "images").iterdir())) for split in ("train", "val", "test")] == [
        22,
        5,
        8,
    ]
    assert set(np.unique(np.array(Image.open(next((root / "train" / "masks").iterdir()))))) == {0, 255}
    cfg = compose_config(
        "train",
        ["data=folder", f"data.root={root}", "data.num_classes=2", "data.in_channels=1", "data.mask_threshold=127",
         "trainer.max_time=00:00:10:00", "trainer.accelerator=cpu"],
    )  # fmt: skip
    cfg, plan = planned_config(cfg)
    assert plan.facts["training_images"] == 22 and plan.value("augment.kind") == "microscopy"
    batch = cfg.data.batch_size
    assert cfg.data.epoch_size // batch > 22 // batch and cfg.trainer.check_val_every_n_epoch == 1
    assert cfg.augment.crop <= 768
