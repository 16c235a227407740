"""A key given twice on the command line: Hydra keeps the last value, and the command says so in one line."""

from __future__ import annotations

from conftest import run_in_process


def test_a_key_given_twice_is_warned_about_naming_both_values(monkeypatch, capsys, tmp_path):
    result = run_in_process(
        "unet-train", "seed=1", "data.batch_size=4", "seed=7", "--cfg", "job",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "warning: seed is given twice (seed=1 and seed=7); the last one, seed=7, is used"
    ]
    assert "\nseed: 7\n" in result.stdout


def test_keys_given_once_are_not_warned_about(monkeypatch, capsys, tmp_path):
    result = run_in_process(
        "unet-train", "seed=1", "data.batch_size=4", "--cfg", "job",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == ""
