"""A user's mistake is one line and exit code 2; a bug in unet keeps its traceback, asks for a report and
exits 1; Hydra's and OmegaConf's errors are told apart by their types (unet.apps.errors, config_errors)."""

from __future__ import annotations

import os
import subprocess
import sys

from test_refusals import error_line, run_app

from unet.apps.errors import BUG_REPORT
from unet.apps.hydra_app import FULL_ERROR_SET_BY_UNET
from unet.utils.errors import ConfigError


def raising(error: Exception):
    def plan_config(cfg):
        raise error

    return plan_config


def test_a_bug_inside_a_command_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys, tmp_path):
    # A plain ValueError from the library function the command calls: our bug, not the user's input.
    monkeypatch.setattr("unet.planning.plan_config", raising(ValueError("an invariant of ours broke")))
    code, err, _ = run_app("plan", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ValueError: an invariant of ours broke" in err
    assert "error: " not in err
    assert err.strip().splitlines()[-1] == BUG_REPORT


def test_a_config_error_from_the_same_place_is_one_line_with_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("unet.planning.plan_config", raising(ConfigError("model.x=3: expected at most 2")))
    code, err, _ = run_app("plan", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert error_line(err) == "error: model.x=3: expected at most 2"


def test_a_bug_through_hydras_instantiate_is_still_a_bug(monkeypatch, capsys, tmp_path):
    # Hydra wraps what a built object raised in an InstantiationException: looked beneath, not trusted.
    from hydra.errors import InstantiationException

    wrapped = InstantiationException("Error in call to target 'unet.x.Y':\nKeyError('z')")
    wrapped.__cause__ = KeyError("z")
    monkeypatch.setattr("unet.planning.plan_config", raising(wrapped))
    code, err, _ = run_app("plan", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1] == BUG_REPORT


def test_bad_override_syntax_names_the_argument(monkeypatch, capsys):
    code, err, _ = run_app("plan", "x=[1,", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert "cannot parse the command line argument 'x=[1,': no viable alternative" in error_line(err)


def test_a_pattern_typed_without_quotes_is_shown_quoted(monkeypatch, capsys):
    code, err, _ = run_app("train", "data.mask_pattern={id}_manual1", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert error_line(err).endswith(
        """quote such a value for Hydra and the shell: 'data.mask_pattern="{id}_manual1"'"""
    )


def test_an_unknown_group_option_names_the_group_and_its_options(monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "plan", "model/net=nope", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert "Could not find 'model/net/nope'; valid options in 'model/net': " in error_line(err)
    assert "smp_unet, unet" in err


def test_an_override_of_the_wrong_type_for_hydras_own_keys_is_one_line(monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "plan", "hydra.job.chdir=abc", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert "hydra.job.chdir=abc; Value 'abc' is not a valid bool" in error_line(err)


def test_an_interpolation_to_an_unknown_key_is_one_line_naming_where(monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "plan", "data=folder", "data.root=${oops}", f"hydra.run.dir={tmp_path}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    assert error_line(err) == "error: Interpolation key 'oops' not found (in data.root)"


def test_the_error_path_does_not_load_torch_or_lightning():
    code = "import sys, unet.apps.errors; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_process_a_command_starts_still_answers_a_mistake_in_one_line(tmp_path):
    """A comparison's trainings and a race's contenders inherit the HYDRA_FULL_ERROR=1 their command set
    for itself: their config mistakes stay one line with exit code 2. The user's own
    HYDRA_FULL_ERROR=1 still gets Hydra's full report."""
    command = [sys.executable, "-m", "unet.apps.train", "model.net.depht=1"]
    inherited = {**os.environ, "HYDRA_FULL_ERROR": "1", FULL_ERROR_SET_BY_UNET: "1"}
    child = subprocess.run(command, capture_output=True, text=True, env=inherited, cwd=tmp_path)
    assert child.returncode == 2, child.stderr
    assert child.stderr.strip().count("\n") == 0 and "model.net.depht" in child.stderr
    users = {key: value for key, value in inherited.items() if key != FULL_ERROR_SET_BY_UNET}
    full = subprocess.run(command, capture_output=True, text=True, env=users, cwd=tmp_path)
    assert full.returncode == 1 and "Traceback" in full.stderr
