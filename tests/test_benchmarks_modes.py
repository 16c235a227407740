"""unet-benchmark's one `mode` key: each mode runs its benchmark; the flags it replaced, and a mode
that does not exist, are refused in one line with exit code 2."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from test_refusals import error_line, run_app

from unet.apps.benchmark import MODES, main

# Each mode, the overrides that keep it small, and a key only its JSON report has.
SMALL_RUNS = {
    "speed": (["quick=true", "methods=[bilinear]"], "results"),
    "levers": (["quick=true", "methods=[bilinear]"], "levers"),
    "scaling": (["quick=true", "methods=[bilinear]", "scaling_sizes=[32]"], "scaling"),
    "tiled": (["quick=true", "tiled.onnx=false"], "megapixels"),
}
# Each flag of earlier versions and the mode that replaced it.
RENAMED = {"predict": "tiled", "time_to_quality": "time_to_quality", "levers": "levers", "scaling": "scaling"}


def test_the_modes_are_the_documented_ones():
    assert list(MODES) == ["speed", "levers", "scaling", "tiled", "time_to_quality"]


@pytest.mark.parametrize("mode", sorted(SMALL_RUNS))
def test_each_mode_runs_its_benchmark_and_writes_its_report(mode, compose_config, tmp_path, capsys):
    overrides, only_key = SMALL_RUNS[mode]
    main(compose_config("benchmark", f"mode={mode}", *overrides))
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert only_key in report
    others = {key for name, (_, key) in SMALL_RUNS.items() if name != mode} - {"results"}
    assert not others & set(report), f"mode={mode} also ran {others & set(report)}"
    assert "written to" in capsys.readouterr().out


def test_the_default_mode_is_speed(compose_config):
    assert compose_config("benchmark").mode == "speed"


def test_time_to_quality_mode_runs_the_race_which_checks_its_settings_first(compose_config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(compose_config("benchmark", "mode=time_to_quality", "race.reference=nope"))
    assert exit_info.value.code == 2
    assert "race.reference='nope' is not a contender" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize("flag", sorted(RENAMED))
def test_each_old_flag_names_its_mode(flag, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "benchmark",
        "quick=true",
        f"{flag}=true",
        f"hydra.run.dir={tmp_path}",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2
    assert error_line(err) == f"error: {flag}=true is now mode={RENAMED[flag]}"


@pytest.mark.parametrize("argument", ["+levers=true", "scaling=false"])
def test_an_old_flag_added_or_set_false_is_refused_too(argument, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "benchmark", argument, f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    key = argument.lstrip("+").split("=")[0]
    assert f"{key}=true is now mode={RENAMED[key]}" in error_line(err)


def test_an_unknown_mode_lists_the_valid_ones(monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "benchmark", "mode=fast", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    line = error_line(err)
    assert "mode=fast" in line and "speed, levers, scaling, tiled, time_to_quality" in line
    assert not (tmp_path / "benchmark.json").exists()


def test_the_console_script_names_the_new_spelling_of_an_old_flag(tmp_path):
    result = run_cli("unet-benchmark", "predict=true", cwd=tmp_path)
    assert result.returncode == 2
    assert error_line(result.stderr) == "error: predict=true is now mode=tiled"
