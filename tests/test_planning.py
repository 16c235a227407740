"""The training plan (``unet.planning``): rules that respond to the data, the budget and the measured speed;
values typed by the user win; the plan lands in the config, ``plan.json`` and ``unet-plan``'s output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from omegaconf import OmegaConf
from PIL import Image

from unet.data.fingerprint import Fingerprint
from unet.planning import AUTO, PLANNED_KEYS, PlanInputs, make_plan, plan_config, plan_overrides
from unet.planning.configure import fixed_values, time_budget_s
from unet.planning.rules import MIN_EPOCH_STEPS, MIN_PASSES
from unet.profiling import write_mitochondria_proxy
from unet.training.run import train
from unet.utils.config import compose_config

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
    assert skewed.value("model.loss.class_weights") == "median_frequency"
    assert skewed.value("data.rare_class_crop_p") > 0
    # classes of a few percent each are learnt without weights; two classes never get them
    shapes = plan_for(fingerprint(fractions=(0.82, 0.06, 0.06, 0.06), widths=(9.0,) * 4))
    assert shapes.value("model.loss.class_weights") is None
    binary = plan_for(fingerprint(fractions=(0.995, 0.005), widths=(9.0, 9.0)))
    assert binary.value("model.loss.class_weights") is None and binary.value("data.rare_class_crop_p") > 0


def test_a_gpu_plan_is_wider_with_larger_patches():
    plan = plan_for(fingerprint(size=(1024, 1024)), device="cuda", rates=machine(fp32=40, bf16=120))
    assert plan.value("model.net.base_channels") == 32 and plan.value("augment.crop") == 512
    assert plan.value("model.net.depth") == 5


def test_time_budgets_parse_as_lightning_reads_them():
    assert time_budget_s("00:00:10:00") == 600
    assert time_budget_s("01:02:00:30") == 86400 + 7200 + 30
    assert time_budget_s({"minutes": 5}) == 300
    assert time_budget_s(None) is None
    with pytest.raises(ValueError, match="DD:HH:MM:SS"):
        time_budget_s("10:00")


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


def test_plan_config_writes_concrete_values_into_the_config(folder):
    cfg = compose_config("train", [*folder_overrides(folder), "trainer.max_time=00:00:02:00"])
    plan = plan_config(cfg)
    assert plan is not None
    assert AUTO not in fixed_values(cfg).values()  # every auto key was decided
    resolved = OmegaConf.to_container(cfg.data, resolve=True)
    assert cfg.data.mean == pytest.approx([plan.value("data.mean")[0]], abs=1e-4)
    assert cfg.augment.crop == 96 and resolved["train_transforms"][0]["_target_"].endswith("RandomCrop")
    assert cfg.model.net.base_channels == 8 and not plan.choices["model.net.base_channels"].planned
    assert cfg.trainer.max_epochs == -1 and plan.facts["training_images"] == 9
    assert plan_config(cfg) is None  # nothing left to plan


def test_plan_overrides_reproduce_the_plan(folder):
    """What unet-compare gives every run: composing with the plan's overrides plans nothing more."""
    overrides = [*folder_overrides(folder), "trainer.max_time=00:00:02:00"]
    cfg = compose_config("train", overrides)
    plan = plan_config(cfg)
    again = compose_config("train", [*overrides, *plan_overrides(plan)])
    assert fixed_values(again) == fixed_values(cfg)
    assert plan_config(again) is None


def test_train_stores_the_plan_and_the_planned_config(folder, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "train",
        [*folder_overrides(folder), "trainer.max_epochs=1", "model.net.depth=2", f"hydra.run.dir={run_dir}",
         f"paths.output_dir={run_dir}", "callbacks.progress_bar=null", "logger=csv"],
    )  # fmt: skip
    metrics = train(cfg)
    assert 0 <= metrics["val/miou"] <= 1
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    plan = json.loads((run_dir / "plan.json").read_text())
    planned = {c["key"]: c["value"] for c in plan["choices"] if c["planned"]}
    assert "trainer.max_epochs" not in planned and stored["trainer"]["max_epochs"] == 1  # typed, kept
    assert stored["data"]["batch_size"] == planned["data.batch_size"]
    assert stored["trainer"]["precision"] == planned["trainer.precision"]
    assert AUTO not in fixed_values(OmegaConf.create(stored)).values()


def test_unet_plan_prints_every_planned_key_with_a_reason(folder, tmp_path):
    result = run_cli("unet-plan", *folder_overrides(folder), "trainer.max_time=00:00:05:00", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for key in ("data.batch_size", "trainer.precision", "data.epoch_size", "augment.crop", "data.mean"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(key))
        assert "plan" in line.split() and len(line.split()) > 3
    assert "model.net.base_channels" in result.stdout and "config" in result.stdout


def test_the_mitochondria_proxy_gets_sampled_epochs_and_sparse_validation(tmp_path):
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
    plan = plan_config(cfg)
    assert plan.facts["training_images"] == 22 and plan.value("augment.kind") == "microscopy"
    batch = cfg.data.batch_size
    assert cfg.data.epoch_size // batch > 22 // batch and cfg.trainer.check_val_every_n_epoch == 1
    assert cfg.augment.crop <= 768
