"""unet-benchmark mode=time_to_quality: recipes raced for a wall-clock budget, scored on held-out data over time."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import TINY_RUN, run_in_process, train_in_process
from PIL import Image
from test_refusals import last_line

import unet.benchmarks.race
from unet.apps import benchmark as benchmark_app
from unet.benchmarks import RaceSettings
from unet.benchmarks.race import time_to_reach, times_to_target, train_command
from unet.utils.budget import max_time_seconds
from unet.utils.config import compose_config

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


# A contender whose unet-train refuses its overrides: it fails at once (before torch loads, see
# test_fast_answers), which is all a race needs of a broken recipe.
BROKEN = '["model.net.depht=1"]'
# A wall-clock budget of a few snapshots, and the spacing of its snapshots.
BUDGET_S, EVERY_S = 3, 0.5


def race_arguments(*contenders: str, reference: str, overrides: list[str]) -> list[str]:
    """unet-benchmark's arguments for a race of ``contenders`` (``+race.contenders.<name>=[...]``)."""
    return [
        "mode=time_to_quality",
        "~race.contenders.unet",
        "~race.contenders.monai_basicunet",
        *contenders,
        f"race.reference={reference}",
        f"race.budget_s={BUDGET_S}",
        f"race.every_s={EVERY_S}",
        "race.metric=miou",
        "race.overrides=[" + ",".join(f'"{o}"' for o in overrides) + "]",
    ]


def test_a_race_trains_each_contender_scores_its_snapshots_and_reports_who_reaches_the_target(
    tmp_path, monkeypatch, capsys
):
    """Two tiny recipes and a broken one, a few seconds each: curves from the test split, the reference's
    final score as target, the broken contender reported without stopping the race."""
    monkeypatch.setattr(unet.benchmarks.race, "subprocess", SimpleNamespace(run=train_in_process))
    common = [o for o in TINY_RUN if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=-1"]
    out = tmp_path / "race"
    contenders = [
        '+race.contenders.narrow=["model.net.base_channels=4"]',
        '+race.contenders.wide=["model.net.base_channels=8"]',
        f"+race.contenders.broken={BROKEN}",
    ]
    arguments = race_arguments(*contenders, reference="wide", overrides=["data=synthetic", *common])
    benchmark_app.main(compose_config("benchmark", [*arguments, f"paths.output_dir={out}"]))
    stdout = capsys.readouterr().out
    report = json.loads((out / "time_to_quality.json").read_text())
    assert report["split"] == "test" and report["metric"] == "miou"
    assert set(report["curves"]) == {"narrow", "wide"} and set(report["failed"]) == {"broken"}
    for name, curve in report["curves"].items():
        seconds = [point["seconds"] for point in curve]
        assert len(curve) >= 3 and seconds == sorted(seconds), (name, seconds)
        assert BUDGET_S - EVERY_S <= seconds[-1] < 2 * BUDGET_S, (name, seconds)
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
    assert "time to quality on" in stdout and "failed: broken" in stdout
    assert "narrow" in stdout and "wide" in stdout


def test_a_race_whose_reference_fails_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """No result without the reference: the command ends with the failure as the user's (exit 2), not a bug.
    The contender is a process of its own, as every race starts them."""
    arguments = race_arguments(
        f"+race.contenders.broken={BROKEN}", reference="broken", overrides=["data=synthetic"]
    )
    result = run_in_process(
        "unet-benchmark", *arguments, f"hydra.run.dir={tmp_path / 'race'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: the reference contender broken failed: unet-train exited with 2" in last_line(
        result.stderr
    )
