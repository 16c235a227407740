"""unet-benchmark mode=time_to_quality: recipes raced for a wall-clock budget, scored on held-out data over time."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_RUN, run_cli
from PIL import Image
from test_refusals import last_line

from unet.benchmarks import RaceSettings
from unet.benchmarks.race import time_to_reach, times_to_target, train_command
from unet.utils.budget import max_time_seconds

CURVES = {
    "peer": [{"seconds": 20, "score": 0.5}, {"seconds": 40, "score": 0.7}, {"seconds": 60, "score": 0.8}],
    "ours": [{"seconds": 20, "score": 0.6}, {"seconds": 40, "score": 0.85}, {"seconds": 60, "score": 0.84}],
    "slow": [{"seconds": 20, "score": 0.1}, {"seconds": 40, "score": 0.2}],
}


def test_time_to_target_is_the_first_snapshot_reaching_it_and_the_speedup_is_against_the_reference():
    assert time_to_reach(CURVES["ours"], 0.8) == 40
    assert time_to_reach(CURVES["slow"], 0.8) is None
    # A run whose delivered model (its best checkpoint) scores the target has it at the end at the latest.
    assert time_to_reach(CURVES["slow"], 0.8, delivered=0.81) == 40
    delivered = {"peer": 0.82, "ours": 0.86, "slow": None}
    summary = times_to_target(CURVES, delivered, "peer", None)
    assert summary["target"] == 0.82  # what the reference delivered at the end of its budget
    assert summary["contenders"]["peer"]["time_to_target_s"] == 60  # no snapshot reached it: its end
    ours = summary["contenders"]["ours"]
    assert ours["time_to_target_s"] == 40 and ours["speedup_vs_reference"] == pytest.approx(1.5)
    assert ours["final_score"] == 0.84 and ours["best_score"] == 0.85 and ours["trained_s"] == 60
    assert ours["delivered_score"] == 0.86
    assert summary["contenders"]["slow"]["time_to_target_s"] is None
    assert summary["contenders"]["slow"]["speedup_vs_reference"] is None
    # Without a delivered score the reference's last snapshot is the target.
    assert times_to_target(CURVES, {}, "peer", None)["target"] == 0.8
    # A given target: the reference may not reach it either.
    assert (
        times_to_target(CURVES, delivered, "peer", 0.9)["contenders"]["ours"]["speedup_vs_reference"] is None
    )


def test_budgets_go_to_the_runs_in_seconds_and_bad_settings_are_refused(tmp_path):
    command = train_command(
        RaceSettings(contenders={"ours": []}, reference="ours", budget_s=90.5), [], tmp_path
    )
    assert "trainer.max_time=90.5" in command
    assert max_time_seconds(command[command.index("trainer.max_time=90.5")].split("=")[1]) == 90.5
    with pytest.raises(ValueError, match="race.reference='peer' is not a contender"):
        RaceSettings(contenders={"ours": []}, reference="peer")
    with pytest.raises(ValueError, match="every_s=60"):
        RaceSettings(contenders={"ours": []}, reference="ours", budget_s=60, every_s=60)


def test_a_race_trains_each_contender_scores_its_snapshots_and_reports_who_reaches_the_target(tmp_path):
    """Two tiny recipes and a broken one, 4 s each: curves from the test split, the reference's final
    score as target, the broken contender reported without stopping the race."""
    common = [o for o in TINY_RUN if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=-1"]
    out = tmp_path / "race"
    result = run_cli(
        "unet-benchmark",
        "mode=time_to_quality",
        "~race.contenders.unet",
        "~race.contenders.monai_basicunet",
        '+race.contenders.narrow=["model.net.base_channels=4"]',
        '+race.contenders.wide=["model.net.base_channels=8"]',
        '+race.contenders.broken=["model.net.depth=0"]',
        "race.reference=wide",
        "race.budget_s=4",
        "race.every_s=1",
        "race.metric=miou",
        "race.overrides=[" + ",".join(f'"{o}"' for o in ["data=synthetic", *common]) + "]",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "time_to_quality.json").read_text())
    assert report["split"] == "test" and report["metric"] == "miou"
    assert set(report["curves"]) == {"narrow", "wide"} and set(report["failed"]) == {"broken"}
    for name, curve in report["curves"].items():
        seconds = [point["seconds"] for point in curve]
        assert len(curve) >= 3 and seconds == sorted(seconds) and 3.5 <= seconds[-1] < 8, (name, seconds)
        assert all(0 <= point["score"] <= 1 for point in curve)
        snapshots = json.loads((out / name / "snapshots" / "snapshots.json").read_text())
        assert [s["seconds"] for s in snapshots] == seconds
        assert not list((out / name / "snapshots").glob("*.ckpt"))  # scored, then removed
        assert (out / name / "train.log").is_file()
    delivered = json.loads((out / "wide" / "metrics.json").read_text())["test/miou"]
    assert report["target"] == pytest.approx(delivered)
    assert report["contenders"]["wide"]["delivered_score"] == pytest.approx(delivered)
    assert report["contenders"]["wide"]["speedup_vs_reference"] == pytest.approx(1.0)
    with Image.open(out / "time_to_quality.png") as figure:
        assert figure.size[0] > 300
    assert "time to quality on" in result.stdout and "failed: broken" in result.stdout
    assert "narrow" in result.stdout and "wide" in result.stdout


def test_a_race_whose_reference_fails_is_refused_in_one_line(tmp_path):
    """No result without the reference: the command ends with the failure as the user's (exit 2), not a bug.

    Slow: the benchmark and its contender's unet-train are two processes, each loading torch and Lightning.
    """
    result = run_cli(
        "unet-benchmark",
        "mode=time_to_quality",
        "~race.contenders.unet",
        "~race.contenders.monai_basicunet",
        '+race.contenders.broken=["model.net.depth=0"]',
        "race.reference=broken",
        "race.budget_s=4",
        "race.every_s=1",
        'race.overrides=["data=synthetic"]',
        f"hydra.run.dir={tmp_path / 'race'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: the reference contender broken failed: unet-train exited with" in last_line(result.stderr)
