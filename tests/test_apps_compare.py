"""`unet-compare`: a small real comparison writes every report file, failures included."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_RUN, replacing, run_in_process, train_in_process
from omegaconf import DictConfig, open_dict
from PIL import Image

import unet.compare.runs
from unet.compare import COMPARE_KEYS, equal_parameter_widths, run_comparison, run_overrides
from unet.models import UPSAMPLERS
from unet.models.sizing import parameter_count
from unet.utils.config import compose_config

# One epoch of one step per run, a few validation and test images: a comparison's runs, not their scores.
COMPARE_RUN = replacing(
    TINY_RUN, "trainer.max_epochs=1", "data.num_train=16", "data.num_val=8", "data.num_test=8"
)


def compare_config(arguments: Sequence[str]) -> tuple[DictConfig, list[str]]:
    """What unet-compare gets from these arguments: its config and the overrides of every run."""
    cfg = compose_config("compare", arguments, return_hydra_config=True)
    overrides = run_overrides(cfg.hydra.overrides.task, cfg.hydra.overrides.hydra)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a Hydra app
    return cfg, overrides


@pytest.fixture(scope="module", autouse=True)
def sweeps_in_process():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unet.compare.runs, "subprocess", SimpleNamespace(run=train_in_process))
        yield


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    """Two methods x two seeds on tiny synthetic data, plus a report."""
    output_dir = tmp_path_factory.mktemp("compare")
    arguments = ["methods=[nearest,maxunpool]", "seeds=[0,1]", f"output={output_dir}", *COMPARE_RUN]
    arguments += ["costs.height=32", "costs.width=32", "costs.batch_size=2"]
    run_comparison(*compare_config(arguments), "unet-compare " + " ".join(arguments))
    return output_dir


def test_runs_get_the_train_overrides_and_the_launcher_but_not_compares_own_keys():
    task = ["methods=[a]", "seeds=[1]", "data=isbi2012", "+model.net.depth=3", "costs.height=64", "~test"]
    hydra = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.run.dir=cmp", "hydra.mode=RUN"]
    assert run_overrides(task, hydra) == [
        "data=isbi2012", "+model.net.depth=3", "~test", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
    ]  # fmt: skip


def test_compare_keys_are_those_compare_adds_to_the_train_config():
    added = set(compose_config("compare")) - set(compose_config("train"))
    assert added == set(COMPARE_KEYS)


def test_every_report_file_is_written(comparison):
    for name in [
        "comparison.csv", "comparison.json", "comparison.md", "comparison.html", "miou_curves.png", "miou_bars.png",
        "rank_stability.png", "confidence_intervals.png",
    ]:  # fmt: skip
        assert (comparison / name).is_file(), name
    for name in ["qualitative.png", "qualitative_crops.png", "miou_bars.png"]:
        with Image.open(comparison / name) as image:
            assert image.width > 200 and image.height > 100
    runs = sorted(p.relative_to(comparison).as_posix() for p in comparison.glob("runs/*/seed_*/metrics.json"))
    assert runs == [f"runs/{m}/seed_{s}/metrics.json" for m in ("maxunpool", "nearest") for s in (0, 1)]
    plan = json.loads((comparison / "compare.json").read_text())
    assert plan["train_overrides"] == COMPARE_RUN
    assert plan["compare_config"]["model"]["net"]["depth"] == 2


def test_table_has_one_row_per_method_with_scores_and_costs(comparison):
    with open(comparison / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["method"] for row in rows) == ["maxunpool", "nearest"]
    for column in [
        "val/miou_mean", "val/miou_std", "val/dice_mean", "val/pixel_acc_mean", "val/boundary_f1_mean",
        "val/checkerboard_mean", "test/miou_mean", "params", "upsampler_params", "upsampler_share", "gflops",
        "train_images_per_s", "latency_ms", "peak_memory_mb", "n_seeds",
    ]:  # fmt: skip
        assert column in rows[0], column
    for row in rows:
        assert row["n_seeds"] == "2"
        assert 0 <= float(row["val/miou_mean"]) <= 1
        assert float(row["gflops"]) > 0 and float(row["train_images_per_s"]) > 0
    markdown = (comparison / "comparison.md").read_text()
    assert "unet-compare methods=[nearest,maxunpool]" in markdown


def test_the_verdict_comes_from_per_image_scores_with_intervals_and_rank_shares(comparison):
    statistics = json.loads((comparison / "comparison.json").read_text())["statistics"]
    assert statistics["split"] == "test" and statistics["metric"] == "miou"  # the verdict on test, not val
    assert statistics["n_seeds"] == 2 and statistics["n_images"] > 0
    for method in statistics["methods"]:
        assert method["ci_low"] <= method["mean"] <= method["ci_high"]
        assert sum(method["rank_share"]) == pytest.approx(1.0)
    (pair,) = statistics["pairs"]
    means = {method["method"]: method["mean"] for method in statistics["methods"]}
    assert pair["difference"] == pytest.approx(means[pair["first"]] - means[pair["second"]])
    markdown = (comparison / "comparison.md").read_text()
    verdict = markdown.split("## Verdict", 1)[1].split("## All metrics", 1)[0]
    assert "On the test split" in verdict
    assert ("no significant difference" in verdict) != pair["significant"]
    with Image.open(comparison / "rank_stability.png") as image:
        assert image.width > 100


def test_mode_report_rebuilds_and_shows_a_failed_run(comparison):
    for name in ["comparison.csv", "comparison.json", "comparison.md"]:
        (comparison / name).unlink()
    # A run that broke: its metrics are gone and the error it recorded is there instead.
    broken = comparison / "runs" / "nearest" / "seed_1"
    (broken / "metrics.json").rename(broken / "metrics.json.bak")
    (broken / "error.json").write_text(json.dumps({"error": "FloatingPointError: train loss became nan"}))
    try:
        cfg, overrides = compare_config([f"output={comparison}", "mode=report"])
        run_comparison(cfg, overrides, "unet-compare mode=report")
    finally:
        (broken / "metrics.json.bak").rename(broken / "metrics.json")
        (broken / "error.json").unlink()
    report = json.loads((comparison / "comparison.json").read_text())
    failed = [run for run in report["runs"] if run["status"] == "failed"]
    assert [(run["method"], run["seed"]) for run in failed] == [("nearest", 1)]
    assert "train loss became nan" in failed[0]["error"]
    assert "train loss became nan" in (comparison / "comparison.md").read_text()


def test_mode_resume_trains_again_only_the_runs_without_a_result_and_keeps_the_failed_one(comparison):
    broken = comparison / "runs" / "maxunpool" / "seed_0"
    (broken / "metrics.json").unlink()
    (broken / "error.json").write_text(json.dumps({"error": "node lost"}))
    untouched = (comparison / "runs" / "nearest" / "seed_0" / "metrics.json").stat().st_mtime_ns
    cfg, overrides = compare_config([f"output={comparison}", "mode=resume"])
    run_comparison(cfg, overrides, "unet-compare mode=resume")
    assert json.loads((broken / "metrics.json").read_text())["global_step"] > 0
    assert not (broken / "error.json").exists()
    kept = comparison / "failed_runs" / "maxunpool" / "seed_0" / "error.json"
    assert json.loads(kept.read_text())["error"] == "node lost"
    assert (comparison / "runs" / "nearest" / "seed_0" / "metrics.json").stat().st_mtime_ns == untouched
    report = json.loads((comparison / "comparison.json").read_text())
    assert all(run["status"] == "ok" for run in report["runs"])


def test_an_unknown_mode_lists_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match="mode=again: no such mode of unet-compare; valid modes: run, resume, report"
    ):
        run_comparison(*compare_config([f"output={tmp_path}", "mode=again"]), "unet-compare")


def test_rerunning_into_a_finished_comparison_is_refused(comparison):
    with pytest.raises(FileExistsError, match="rebuild its report with mode=report"):
        run_comparison(*compare_config([f"output={comparison}"]), "unet-compare")


def test_mode_report_needs_a_comparison(tmp_path):
    with pytest.raises(FileNotFoundError, match="mode=report needs the output of a comparison"):
        run_comparison(*compare_config([f"output={tmp_path}", "mode=report"]), "unet-compare")


def test_equal_params_gives_every_method_the_same_parameter_count_within_2_percent():
    cfg = compose_config(
        "compare", ["model.net.base_channels=8", "model.net.depth=3", "model.net.norm=batch"]
    )
    widths = equal_parameter_widths(sorted(UPSAMPLERS), cfg)
    counts = {
        method: parameter_count(
            upsample=method, in_channels=1, num_classes=4, base_channels=8, depth=3, decoder_width=width
        )
        for method, width in widths.items()
    }
    assert max(counts.values()) / min(counts.values()) <= 1.02 * 1.02
    assert min(widths.values()) == pytest.approx(1.0, abs=0.01)  # the largest method keeps its decoder
    assert widths["bilinear_additive"] > widths["nearest"] > 1.0


def test_equal_params_sizes_a_variant_with_its_own_overrides():
    net = ["model.net.base_channels=32", "model.net.depth=4", "model.net.norm=batch"]
    variant = "+variants.resnet18={upsample: nearest, overrides: ['model.encoder=resnet18']}"
    widths = equal_parameter_widths(["nearest", "resnet18"], compose_config("compare", [*net, variant]))
    sizes = {"upsample": "nearest", "in_channels": 1, "num_classes": 4, "base_channels": 32, "depth": 4}
    # The plain U-Net (7 M) is widened to the parameter count of the variant's ResNet-18 U-Net (14 M).
    target = parameter_count(**sizes, encoder="resnet18")
    assert widths["resnet18"] == pytest.approx(1.0, abs=0.01) and widths["nearest"] > 1.2
    assert parameter_count(**sizes, decoder_width=widths["nearest"]) == pytest.approx(target, rel=0.02)


def test_equal_params_refuses_a_network_it_cannot_size():
    cfg = compose_config("compare", ["model/net=monai_basicunet"])
    with pytest.raises(ValueError, match="equal_params=true sizes unet.models.UNet"):
        equal_parameter_widths(["nearest"], cfg)


def test_cli_unknown_method_is_a_clear_error(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-compare", "methods=[nearest,bicubic]", f"output={tmp_path / 'cmp'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown upsampling method(s) ['bicubic']" in result.stderr


@pytest.mark.parametrize("key", ["methods", "seeds"])
def test_an_empty_list_of_methods_or_seeds_is_refused_before_anything_is_written(
    key, tmp_path, monkeypatch, capsys
):
    result = run_in_process(
        "unet-compare", f"{key}=[]", f"output={tmp_path / 'cmp'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {key}: an empty list compares nothing; leave it out or name some, e.g. "
        + ("methods=[nearest,maxunpool]" if key == "methods" else "seeds=[0,1,2]")
    )
    assert not (tmp_path / "cmp").exists()
