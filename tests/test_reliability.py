"""Bad input gets a clear message and a non-zero exit; faults lose nothing; checkpoints load safely."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import TINY_RUN, run_cli
from PIL import Image

from unet.apps import check_data as check_data_app
from unet.apps import evaluate as evaluate_app
from unet.apps import train as train_app
from unet.training.run import train
from unet.utils.config import compose_config

TINY_MODEL = [o for o in TINY_RUN if not o.startswith("data.")]


def run_app(module, *arguments: str, monkeypatch, capsys) -> tuple[int, str]:
    """Run a Hydra app's ``main`` in this process as its console script would; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [f"unet-{module.__name__.rsplit('.', 1)[-1]}", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, capsys.readouterr().err


def write_folder(root: Path, count: int = 4, size: tuple[int, int] = (24, 32), values=(0, 255)) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "images" / f"s{index}.png")
        mask = rng.choice(np.array(values, dtype=np.uint8), size)
        Image.fromarray(mask).save(root / "masks" / f"s{index}.png")
    return root


def folder_args(root: Path, *extra: str) -> list[str]:
    return [
        "data=folder", f"data.root={root}", "data.in_channels=1", "data.num_workers=0", "data.batch_size=2",
        "+data.mask_mapping={0: 0, 255: 1}", "data.val_fraction=0.5", "data.train_transforms=null",
        "data.epoch_size=null", "data.mean=[0.5]", "data.std=[0.25]", *extra,
    ]  # fmt: skip


def check(root: Path, tmp_path: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str]:
    return run_app(
        check_data_app, *folder_args(root, *extra), f"hydra.run.dir={tmp_path / 'check'}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip


def test_check_data_prints_a_summary_of_a_good_folder(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "good")
    monkeypatch.setattr(
        sys, "argv", ["unet-check-data", *folder_args(root), f"hydra.run.dir={tmp_path / 'c'}"]
    )
    check_data_app.main()
    out = capsys.readouterr().out
    assert "all samples read and checked" in out and "24x32" in out
    summary = json.loads((tmp_path / "c" / "data_summary.json").read_text())
    assert summary["train"]["images"] == 2 and summary["val"]["images"] == 2
    fractions = summary["train"]["class_pixel_fraction"]
    assert sum(fractions.values()) == pytest.approx(1.0) and 0.3 < fractions["class_1"] < 0.7


def test_image_without_mask_is_listed(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    (root / "masks" / "s2.png").unlink()
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and "s2" in err and "mask" in err


def test_mask_without_image_is_listed(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    (root / "images" / "s1.png").unlink()
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and "s1" in err and "image" in err


def test_image_and_mask_of_different_sizes(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "masks" / "s3.png")
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and "s3.png" in err and "32x24" in err and "30x20" in err


def test_mask_values_the_mapping_does_not_cover(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    Image.fromarray(np.full((24, 32), 7, np.uint8)).save(root / "masks" / "s0.png")
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and "7" in err and "s0.png" in err


def test_unreadable_image(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    data = (root / "images" / "s1.png").read_bytes()
    (root / "images" / "s1.png").write_bytes(data[: len(data) // 3])
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and "s1.png" in err


def test_split_smaller_than_the_batch_with_drop_last(tmp_path, monkeypatch, capsys):
    root = write_folder(tmp_path / "d")
    code, err = run_app(
        train_app, *folder_args(root, "data.batch_size=8", "data.drop_last=true"), *TINY_MODEL,
        f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "drop_last" in err and "batch_size 8" in err


def test_empty_image_folder(tmp_path, monkeypatch, capsys):
    root = tmp_path / "empty"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    code, err = check(root, tmp_path, monkeypatch, capsys)
    assert code == 2 and str(root / "images") in err


def test_unknown_data_set_lists_the_valid_ones(tmp_path):
    result = run_cli("unet-check-data", "data=cityscapes", cwd=tmp_path)
    assert result.returncode != 0 and "folder" in result.stderr and "oxford_pet" in result.stderr


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    """A finished tiny run on synthetic data (4 classes, 1 channel)."""
    output_dir = tmp_path_factory.mktemp("small")
    train(compose_config("train", [f"paths.output_dir={output_dir}", *TINY_RUN, "trainer.max_epochs=1"]))
    return output_dir / "checkpoints" / "last.ckpt"


def test_checkpoint_that_does_not_fit_the_data_is_refused_for_eval_and_fine_tuning(
    small_checkpoint, tmp_path, monkeypatch, capsys
):
    root = write_folder(tmp_path / "d")
    code, err = run_app(
        evaluate_app, f"ckpt_path={small_checkpoint}", *folder_args(root), f"hydra.run.dir={tmp_path / 'e'}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "4 classes in the checkpoint, 2 in the data" in err
    code, err = run_app(
        train_app, f"ckpt_path={small_checkpoint}", *folder_args(root), f"hydra.run.dir={tmp_path / 't'}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "does not fit the data" in err


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    code, err = run_app(
        evaluate_app,
        f"ckpt_path={evil}",
        f"hydra.run.dir={tmp_path / 'e'}",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2 and "refusing to load" in err and str(evil) in err
    code, err = run_app(
        train_app, f"ckpt_path={evil}", *TINY_RUN, f"hydra.run.dir={tmp_path / 't'}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "refusing to load" in err
    assert not marker.exists()


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    good = write_folder(tmp_path / "good", count=4)
    run_dir = tmp_path / "run"
    common = [*TINY_MODEL, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", ["unet-train", *folder_args(good), *common])
    train_app.main()
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    # Same classes and channels, but an image of NaNs: the loss of the first batch that holds it is NaN.
    bad = write_folder(tmp_path / "bad", count=4)
    for index in range(4):
        (bad / "images" / f"s{index}.png").unlink()
        tifffile.imwrite(bad / "images" / f"s{index}.tif", np.full((24, 32), np.nan, np.float32))
    (run_dir / "metrics.json").unlink()
    code, err = run_app(
        train_app, *folder_args(bad), *common[:-2], "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "loss became nan at global step 1" in err
    assert last.read_bytes() == before


DETERMINISTIC_RUN = [
    *TINY_RUN,  # later overrides win
    "data.num_train=480",
    "model.net.dropout=0.1",  # random draws in every step, and the synthetic preset augments
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
]


def start_training(*overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "unet-train"), *overrides],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_checkpoint(path: Path, process: subprocess.Popen, epoch: int, timeout: float = 240) -> None:
    """Until ``path`` holds a checkpoint of ``epoch`` (or later); fails if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if torch.load(path, weights_only=True)["epoch"] >= epoch:
                return
        except (FileNotFoundError, RuntimeError, EOFError):
            pass  # not written yet
        time.sleep(0.02)
    process.kill()  # reading the output of a run still going would wait for its end
    _, stderr = process.communicate()
    raise AssertionError(f"no checkpoint of epoch {epoch} at {path} within {timeout} s: {stderr[-2000:]}")


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert start_training(*DETERMINISTIC_RUN, f"hydra.run.dir={reference}").wait(timeout=300) == 0

    process = start_training(*DETERMINISTIC_RUN, f"hydra.run.dir={interrupted}")
    wait_for_checkpoint(interrupted / "checkpoints" / "last.ckpt", process, epoch=0)
    time.sleep(0.3)  # into epoch 1
    process.kill()
    process.wait()
    assert not (interrupted / "metrics.json").exists(), "the run ended before it was killed"

    resumed = run_cli(
        "unet-train", *DETERMINISTIC_RUN, "ckpt_path=last", f"hydra.run.dir={interrupted}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def without_times(run: Path) -> list[dict]:
        return [
            {k: v for k, v in record.items() if k != "time_s"}
            for record in json.loads((run / "history.json").read_text())
        ]

    assert len(without_times(reference)) == 3
    assert without_times(interrupted) == without_times(reference)
    assert json.loads((interrupted / "metrics.json").read_text()) == json.loads(
        (reference / "metrics.json").read_text()
    )


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    run_dir = tmp_path / "run"
    process = start_training(
        *DETERMINISTIC_RUN, "data.num_train=4000", "trainer.max_epochs=50", f"hydra.run.dir={run_dir}"
    )
    wait_for_checkpoint(run_dir / "checkpoints" / "last.ckpt", process, epoch=0)
    time.sleep(0.5)  # most often into the second epoch; a loaded machine may still be between epochs
    signalled_at = time.time()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.stat().st_mtime >= signalled_at, "last.ckpt is the epoch-end one, not written on SIGTERM"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] >= 4000 // 16, "the checkpoint lost the finished epoch"
    assert f"stopped by SIGTERM; resume with ckpt_path={run_dir}" in (run_dir / "train.log").read_text()
