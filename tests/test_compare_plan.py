"""What unet-compare plans: registered methods and named variants, and the sweeps that train them."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from unet.compare import method_specs, run_overrides
from unet.compare.plan import plan_comparison, sweep_commands
from unet.planning import plan_config
from unet.utils.config import compose_config, override_value

VARIANTS = {"transposed_k3": {"upsample": "transposed", "options": {"kernel_size": 3}}}


def test_registered_methods_use_the_runs_options_and_variants_their_own():
    specs = method_specs(["nearest", "transposed_k3", "nearest"], VARIANTS)
    assert specs == {
        "nearest": {"upsample": "nearest", "options": None, "overrides": []},
        "transposed_k3": {"upsample": "transposed", "options": {"kernel_size": 3}, "overrides": []},
    }


def test_the_default_variants_of_compare_yaml_are_valid():
    cfg = compose_config("compare")
    specs = method_specs(list(cfg.variants), cfg.variants)
    assert specs["transposed_k4"] == {
        "upsample": "transposed",
        "options": {"kernel_size": 4},
        "overrides": [],
    }


@pytest.mark.parametrize(
    ("methods", "variants", "message"),
    [
        (
            ["nearest", "bicubic"],
            VARIANTS,
            r"unknown upsampling method\(s\) \['bicubic'\].*variants: transposed_k3",
        ),
        (
            ["nearest"],
            {"nearest": {"upsample": "bilinear", "options": {}}},
            r"variants \['nearest'\] are named like",
        ),
        (["k5"], {"k5": {"upsample": "transposed", "kernel": 5}}, r"variants.k5: expected \{upsample: "),
        (["k5"], {"k5": {"upsample": "bicubic", "options": {}}}, r"variants.k5: expected"),
        (["k5"], {"k5": {"upsample": "transposed", "overrides": [1]}}, r"variants.k5: expected"),
        (
            ["r34"],
            {"r34": {"upsample": "bilinear", "overrides": ["model.upsample_options={}"]}},
            r"variants.r34.overrides sets \['model.upsample_options=\{\}'\], which the comparison sets",
        ),
        (
            ["r34"],
            {"r34": {"upsample": "bilinear", "overrides": ["seeds=[1]"]}},
            r"variants.r34.overrides sets",
        ),
        (
            ["r34"],
            {"r34": {"upsample": "bilinear", "overrides": {"model.encoder": "resnet34"}}},
            r"^variants.r34.overrides is now a list of key=value overrides, as typed on the command line: "
            r"\['model.encoder=resnet34'\]$",
        ),
    ],
)
def test_bad_names_and_variants_are_refused_with_the_key(methods, variants, message):
    with pytest.raises(ValueError, match=message):
        method_specs(methods, variants)


def composed_runs(command: list[str]) -> list:
    """The train configs of the first seed of one sweep, as unet-train composes them."""
    overrides = [o for o in command[command.index("unet.apps.train") + 2 :] if not o.startswith("hydra.")]
    overrides = [o.split(",")[0] if o.startswith("seed=") else o for o in overrides]
    upsample = next(o for o in overrides if o.startswith("model.upsample="))
    return [
        compose_config("train", [*(o for o in overrides if o != upsample), f"model.upsample={method}"])
        for method in upsample.split("=", 1)[1].split(",")
    ]


def test_each_variant_trains_in_its_own_sweep_with_its_options_and_decoder_width(tmp_path):
    plan = {
        "methods": ["nearest", "bilinear", "transposed_k3"],
        "variants": VARIANTS,
        "seeds": [0, 1],
        "decoder_widths": {"nearest": 1.5, "bilinear": 1.5, "transposed_k3": 1.0},
        # The user's options go to the registered methods; the variant's replace them.
        "train_overrides": ["model.net.depth=2", "model.upsample_options={corner: top_left}"],
    }
    methods_sweep, variant_sweep = sweep_commands(plan, tmp_path)
    assert "hydra.sweep.subdir=${model.upsample}/seed_${seed}" in methods_sweep
    assert "hydra.sweep.subdir=transposed_k3/seed_${seed}" in variant_sweep
    assert "seed=0,1" in methods_sweep and "seed=0,1" in variant_sweep
    nearest, bilinear = composed_runs(methods_sweep)
    assert (nearest.model.upsample, bilinear.model.upsample) == ("nearest", "bilinear")
    assert nearest.model.upsample_options == {"corner": "top_left"}
    assert nearest.model.net.decoder_width == 1.5 and nearest.model.net.depth == 2
    (variant,) = composed_runs(variant_sweep)
    assert variant.model.upsample == "transposed"
    assert variant.model.upsample_options == {"kernel_size": 3}
    assert variant.model.net.decoder_width == 1.0 and variant.model.net.depth == 2


def test_a_variant_with_overrides_trains_its_runs_with_them(tmp_path):
    # Another encoder for one name: the runs' own model.encoder gives way to the variant's.
    variants = {"resnet18": {"upsample": "bilinear", "overrides": ["model.encoder=resnet18"]}}
    specs = method_specs(["bilinear", "resnet18"], variants)
    assert specs["resnet18"] == {
        "upsample": "bilinear",
        "options": {},
        "overrides": ["model.encoder=resnet18"],
    }
    plan = {"methods": list(specs), "variants": {"resnet18": specs["resnet18"]}, "seeds": [0],
            "decoder_widths": None, "train_overrides": ["model.encoder=unet", "model.net.depth=2"]}  # fmt: skip
    methods_sweep, variant_sweep = sweep_commands(plan, tmp_path)
    (bilinear,) = composed_runs(methods_sweep)
    (resnet,) = composed_runs(variant_sweep)
    assert (bilinear.model.encoder, resnet.model.encoder) == ("unet", "resnet18")
    assert resnet.model.upsample == "bilinear" and resnet.model.net.depth == 2


def test_variants_can_differ_in_the_upsampling_factor_and_depth(tmp_path):
    """x4 twice against x2 four times: the same total downsampling, the factor a variant's override."""
    variants = {
        "x4": {"upsample": "bilinear", "overrides": ["model.net.scale=4", "model.net.depth=2"]},
        "x4_x2": {"upsample": "bilinear", "overrides": ["model.net.scale=[4,2,2]", "model.net.depth=3"]},
    }
    specs = method_specs(["bilinear", "x4", "x4_x2"], variants)
    plan = {"methods": list(specs), "variants": {name: specs[name] for name in variants}, "seeds": [0],
            "decoder_widths": None, "train_overrides": ["model.net.depth=4"]}  # fmt: skip
    methods_sweep, *variant_sweeps = sweep_commands(plan, tmp_path)
    (bilinear,) = composed_runs(methods_sweep)
    (x4,), (x4_x2,) = (composed_runs(sweep) for sweep in variant_sweeps)
    assert (bilinear.model.net.scale, bilinear.model.net.depth) == (2, 4)
    assert (x4.model.net.scale, x4.model.net.depth) == (4, 2)
    assert (list(x4_x2.model.net.scale), x4_x2.model.net.depth) == ([4, 2, 2], 3)


def test_a_comparison_of_variants_only_runs_no_empty_sweep(tmp_path):
    plan = {"methods": ["transposed_k3"], "variants": VARIANTS, "seeds": [0], "decoder_widths": None,
            "train_overrides": []}  # fmt: skip
    (command,) = sweep_commands(plan, tmp_path)
    assert "model.upsample=transposed" in command


def test_every_run_of_a_comparison_gets_the_one_training_plan(tmp_path):
    """The training plan is made once and given to every run as the same overrides (``Plan.overrides()``):
    each run composes to the planned values with nothing left to plan; a typed ``augment.kind`` goes to
    the runs as the preset it names (``data/augment=<kind>``)."""
    from test_configs import write_folder_data

    write_folder_data(tmp_path / "data")
    arguments = [
        "methods=[nearest,bilinear]", "seeds=[0]", f"output={tmp_path / 'cmp'}", "data=folder",
        f"data.root={tmp_path / 'data'}", "data.in_channels=1", "data.mask_mapping={0: 0, 255: 1, 100: 255}",
        "data.ignore_index=255", "trainer.accelerator=cpu", "model.net.base_channels=8", "trainer.max_time=60",
        "augment.kind=natural",
    ]  # fmt: skip
    cfg = compose_config("compare", arguments, return_hydra_config=True)
    overrides = run_overrides(cfg.hydra.overrides.task, cfg.hydra.overrides.hydra)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a Hydra app
    plan = plan_comparison(cfg, overrides, "unet-compare " + " ".join(arguments))
    planned = {c["key"]: c["value"] for c in plan["training_plan"]["choices"]}
    assert "data/augment=natural" in plan["train_overrides"]
    assert "augment.kind=natural" not in plan["train_overrides"]
    assert plan["compare_config"]["data"]["batch_size"] == planned["data.batch_size"]
    (sweep,) = sweep_commands(plan, tmp_path / "runs")
    runs = composed_runs(sweep)
    assert [run.model.upsample for run in runs] == ["nearest", "bilinear"]
    for run in runs:
        assert (
            run.data.batch_size == planned["data.batch_size"] and run.augment.crop == planned["augment.crop"]
        )
        assert run.trainer.precision == planned["trainer.precision"] and run.trainer.max_time == 60
        assert run.data.train_transforms[0]["_target_"] == "albumentations.RandomScale"  # natural.yaml
        assert plan_config(run) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        0.25,
        "nearest",
        "null",
        "3",
        "a,b",
        "it's [x]",
        {"kernel_size": 3, "mode": "bilinear"},
        [1, "b"],
    ],
)
def test_override_values_read_back_as_the_same_value(value):
    cfg = compose_config("train", [f"+probe={override_value(value)}"])
    assert cfg.probe == value
