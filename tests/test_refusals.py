"""Every refusal is one line on stderr with exit code 2: config mistakes, missing values, devices this
machine lacks, sizes that are typos; unet-predict goes on past a bad input when asked to."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RUN, replacing, run_cli
from PIL import Image
from test_export_predict import save_checkpoint
from test_reliability import TINY_MODEL

from unet.inference import predict_probabilities
from unet.models import UNet
from unet.training.module import SegmentationModule

# Every command whose entry point is in unet/apps (module name -> console script).
APPS = ["train", "evaluate", "compare", "export", "predict", "benchmark", "plan", "check_data"]


def run_app(name: str, *arguments: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run ``unet.apps.<name>.main`` in this process as its console script would: (exit code, stderr, stdout)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", [f"unet-{name}", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"unet.apps.{name}").main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err, captured.out


def error_line(err: str) -> str:
    """The refusal: exactly one line, ``error: ...``, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def last_line(err: str) -> str:
    """The refusal after a command's own output (logs, progress bars): its last line, and no traceback."""
    assert "Traceback" not in err, err
    line = err.replace("\r", "\n").strip().splitlines()[-1]
    assert line.startswith("error: "), err
    return line


@pytest.mark.parametrize("app", APPS)
def test_an_unknown_key_is_one_line_naming_it_with_exit_2(app, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        app, "modle.lr=1", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert "Could not override 'modle.lr': unknown key" in error_line(err)


@pytest.mark.parametrize("app", ["train", "evaluate", "compare", "plan"])
def test_an_unknown_group_option_lists_the_valid_ones_on_one_line(app, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        app, "data=nope", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    line = error_line(err)
    assert "data/nope" in line and "folder, isbi2012" in line


@pytest.mark.parametrize("app", ["train", "predict"])
def test_bad_override_syntax_is_one_line(app, monkeypatch, capsys):
    code, err, _ = run_app(app, "a=b=c", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert "cannot parse the command line" in error_line(err)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_epochs=abc", "an integer"),
        ("data.batch_size=2.5", "an integer"),
        ("model.optimizer.lr=fast", "a number"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_before_any_work(
    override, expected, monkeypatch, capsys, tmp_path
):
    code, err, _ = run_app(
        "train",
        *replacing(TINY_RUN, override),
        f"hydra.run.dir={tmp_path}",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2
    line = error_line(err)
    assert override.split("=")[0] in line and expected in line
    assert not (tmp_path / "config.yaml").exists()


def test_the_console_scripts_still_help_show_config_and_refuse_with_2(tmp_path):
    assert run_cli("unet-plan", "--help", cwd=tmp_path).returncode == 0
    shown = run_cli("unet-eval", "--cfg", "job", "ckpt_path=x.ckpt", cwd=tmp_path)
    assert shown.returncode == 0 and "ckpt_path: x.ckpt" in shown.stdout
    refused = run_cli("unet-train", "trainer.max_epoch=3", cwd=tmp_path)
    assert refused.returncode == 2
    assert "Could not override 'trainer.max_epoch': unknown key" in error_line(refused.stderr)


@pytest.mark.parametrize(
    ("app", "arguments", "key"),
    [
        ("train", ["data=folder"], "data.root"),  # read while the data module is built: OmegaConf says "root"
        ("plan", ["data=folder"], "data.root"),
        ("evaluate", [], "ckpt_path"),
        ("export", [], "ckpt_path"),
        ("predict", ["input=in", "output=out"], "ckpt_path"),
        ("predict", ["ckpt_path=${input}", "output=out"], "input"),  # inside an interpolation
    ],
)
def test_a_missing_value_names_its_full_key(app, arguments, key, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        app, *arguments, f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert f"missing value for {key} " in error_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(
    ("app", "arguments", "key"),
    [
        ("predict", ["ckpt_path=any.ckpt", "input=in", "output=out", "device=cuda"], "device=cpu"),
        ("train", replacing(TINY_RUN, "trainer.accelerator=gpu"), "trainer.accelerator=cpu"),
        ("evaluate", ["ckpt_path=any.ckpt", "trainer=gpu"], "trainer.accelerator=cpu"),
        ("evaluate", ["ckpt_path=any.ckpt", "device=cuda"], "device=cpu"),
    ],
)
def test_cuda_without_a_gpu_says_so_and_what_to_use(app, arguments, key, monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        app, *arguments, f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    line = error_line(err)
    assert "no CUDA device is available" in line and f"use {key}" in line


def test_a_batch_of_one_through_batch_norm_names_the_fixes(monkeypatch, capsys, tmp_path):
    """32-pixel images through 5 levels: a 1x1 bottleneck, one value per channel in a batch of one."""
    code, err, _ = run_app(
        "train", *TINY_RUN, "data.batch_size=1", "data.num_train=2", "model.net.depth=5", "model.net.base_channels=2",
        "trainer.max_steps=1", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    line = last_line(err)
    assert "model.net.norm=group" in line and "data.batch_size" in line


@pytest.mark.parametrize("num_classes", [10_000_000, 0])
def test_an_absurd_class_count_is_refused_before_allocating(num_classes, monkeypatch, capsys, tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationModule(in_channels=1, num_classes=num_classes)
    code, err, _ = run_app(
        "train", *TINY_MODEL, "data=folder", f"data.root={tmp_path}", f"data.num_classes={num_classes}",
        f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    line = error_line(err)
    if num_classes > 1:
        assert f"data.num_classes={num_classes:,} is more than a mask can index: at most 65,536" in line
    else:
        assert "data.num_classes must be an integer >= 1, got 0" in line


def test_an_absurd_network_width_is_refused_with_the_keys_to_lower():
    with pytest.raises(ValueError, match=r"base_channels=512 with depth=12 .* lower model.net.base_channels"):
        UNet(base_channels=512, depth=12)


def write_inputs(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "c"):
        Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(folder / f"{name}.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return folder


def test_predict_skip_errors_goes_on_and_lists_the_failures(tmp_path, monkeypatch, capsys):
    model = save_checkpoint(tmp_path / "model.ckpt", "nearest")
    inputs = write_inputs(tmp_path / "in")
    common = [f"ckpt_path={model}", f"input={inputs}", f"hydra.run.dir={tmp_path / 'log'}"]
    code, err, out = run_app(
        "predict",
        *common,
        f"output={tmp_path / 'all'}",
        "skip_errors=true",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2
    assert sorted(p.name for p in (tmp_path / "all").glob("*_mask.png")) == ["a_mask.png", "c_mask.png"]
    assert f"failed: {inputs / 'b.png'}: " in err
    assert err.strip().splitlines()[-1] == "error: 1 of 3 input(s) failed (listed above)"
    assert "segmented 2 image(s)" in out
    # Without it the first failure stops the run, in one line naming the file.
    code, err, _ = run_app(
        "predict", *common, f"output={tmp_path / 'first'}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and "b.png" in last_line(err)


def test_a_large_image_shows_progress_over_its_tiles_and_a_small_one_does_not(capsys):
    def pointwise(tiles: np.ndarray) -> np.ndarray:
        return np.concatenate([tiles, -tiles], axis=1)

    predict_probabilities(pointwise, np.zeros((1, 64, 64), np.float32), 2, 1, tile_size=64, batch_size=2)
    assert "tiles" not in capsys.readouterr().err
    predict_probabilities(pointwise, np.zeros((1, 160, 160), np.float32), 2, 1, tile_size=32, batch_size=2)
    assert "tiles" in capsys.readouterr().err


def test_a_new_run_into_a_finished_runs_directory_is_refused_before_hydra_writes_there(
    monkeypatch, capsys, tmp_path
):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("the earlier run's config\n")
    (run_dir / "metrics.json").write_text("{}\n")
    code, err, _ = run_app(
        "train", *TINY_RUN, f"hydra.run.dir={run_dir}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert f"{run_dir} already holds the outputs of an earlier run" in error_line(err)
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "the earlier run's config\n"
    assert sorted(path.name for path in run_dir.iterdir()) == [".hydra", "metrics.json"]  # no train.log


def test_a_run_directory_held_by_a_live_run_is_refused_before_hydra_writes_there(
    monkeypatch, capsys, tmp_path
):
    import json
    import os
    import socket

    from unet.utils.locking import process_start_time

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": process_start_time(os.getpid()),
    }
    (run_dir / "run.lock").write_text(json.dumps(holder))
    code, err, _ = run_app(
        "train", *TINY_RUN, f"hydra.run.dir={run_dir}", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert f"is in use by another unet-train (pid {os.getpid()} on host {socket.gethostname()}" in error_line(
        err
    )
    assert sorted(path.name for path in run_dir.iterdir()) == ["run.lock"]


def test_a_missing_checkpoint_to_resume_is_refused_before_hydra_writes_the_run(monkeypatch, capsys, tmp_path):
    code, err, _ = run_app(
        "train", f"ckpt_path={tmp_path / 'none.ckpt'}", f"hydra.run.dir={tmp_path / 'run'}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    assert "checkpoint to resume from not found" in error_line(err)
    assert not (tmp_path / "run").exists()
