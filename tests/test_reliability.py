"""Bad input gets a clear message and a non-zero exit; faults lose nothing; checkpoints load safely."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NET, TINY_RUN, replacing, run_cli, run_in_process
from lightning.pytorch.utilities.exceptions import SIGTERMException
from PIL import Image
from warm_process import WarmProcess

from unet.apps import check_data as check_data_app
from unet.apps import evaluate as evaluate_app
from unet.apps import train as train_app
from unet.training.run import train
from unet.utils.config import compose_config
from unet.utils.locking import lock_directory

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


def test_unknown_data_set_lists_the_valid_ones(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-check-data", "data=cityscapes", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode != 0 and "folder" in result.stderr and "oxford_pet" in result.stderr


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    """A finished tiny run on synthetic data (4 classes, 1 channel)."""
    output_dir = tmp_path_factory.mktemp("small")
    train(
        compose_config(
            "train", [f"paths.output_dir={output_dir}", *TINY_RUN, "trainer.max_epochs=1", "test=false"]
        )
    )
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
    common = [*replacing(TINY_MODEL, *TINY_NET[1:]), "test=false"]  # the folder's images keep their size
    monkeypatch.setattr(
        sys,
        "argv",
        ["unet-train", *folder_args(good), *common, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
    )
    train_app.main()
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    # The same data normalised by a standard deviation so small that the inputs overflow to infinity:
    # the loss of the next batch is NaN. (Images holding NaN are refused when read.)
    (run_dir / "metrics.json").unlink()
    code, err = run_app(
        train_app, *folder_args(good, "data.std=[1e-45]"), *common, "trainer.max_epochs=2", "ckpt_path=last", "resume_changes=apply",
        f"hydra.run.dir={run_dir}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "loss became nan at global step 1" in err
    assert last.read_bytes() == before


# A run of 2 epochs of 8 steps, so small that its steps cost little beside a command's start. Dropout and
# the synthetic preset's augmentation draw random numbers at every step: a resumed run that repeated,
# skipped or reseeded a batch would end differently.
STEPS_PER_EPOCH = 8
RESUMABLE_RUN = replacing(
    TINY_RUN, *TINY_NET, "data.num_train=32",
    "data.num_val=8", "data.batch_size=4", "model.net.dropout=0.1", "model.optimizer.lr=1e-2",
    "trainer.deterministic=true", "test=false",
)  # fmt: skip
# Where the signal tests stop a run: three steps into its second epoch.
MID_EPOCH_STEP = STEPS_PER_EPOCH + 3


def start_held_run(
    run_dir: Path, step: int, *overrides: str, env: dict[str, str] | None = None
) -> tuple[WarmProcess, Path, Path]:
    """``unet-train`` in a process of its own (forked from ``tests/warm_process.py``'s server, which has
    imported it), held at the end of training step ``step`` until the test removes the marker file it
    writes there (``tests/signal_gate.py``); its stdout and stderr go to a file, its environment is this
    process's updated with ``env``.

    Returns the process, the marker and the output file. Ctrl-C has its default handler in the process,
    whatever a parent started in the background (CI) passed on.
    """
    marker, output = run_dir.parent / f"{run_dir.name}.held", run_dir.parent / f"{run_dir.name}.out"
    process = WarmProcess(
        "unet-train", *overrides, f"hydra.run.dir={run_dir}",
        "+callbacks.hold._target_=signal_gate.HoldAtStep", f"+callbacks.hold.step={step}",
        f"+callbacks.hold.marker={marker}",
        stdout=output, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return process, marker, output


def wait_until_held(marker: Path, process: WarmProcess, output: Path, timeout: float = 240) -> None:
    """Until the run holds at its step; fails if it ends first."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the run never held at its step: {output.read_text()[-2000:]}")
        time.sleep(0.02)


def signal_held_run(process: WarmProcess, marker: Path, signum: signal.Signals) -> None:
    """Send ``signum`` to a held run, then let it go on: the run has handled the signal by then."""
    process.send_signal(signum)
    marker.unlink()


def saved_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def assert_same_run(resumed: Path, reference: Path, epochs: int) -> None:
    """The resumed run's validation history (times aside) and final metrics equal the reference run's."""

    def without_times(run: Path) -> list[dict]:
        return [
            {k: v for k, v in record.items() if k != "time_s"}
            for record in json.loads((run / "history.json").read_text())
        ]

    assert len(without_times(reference)) == epochs
    assert without_times(resumed) == without_times(reference)
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads(
        (reference / "metrics.json").read_text()
    )


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    """RESUMABLE_RUN trained without interruption (in this process: the runs compared with it resume here)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train(compose_config("train", [f"paths.output_dir={run_dir}", *RESUMABLE_RUN]))
    return run_dir


def resume(run_dir: Path, ckpt_path: str, tmp_path: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """``unet-train`` resuming ``run_dir`` in place, as a user would type it (run in this process)."""
    return run_in_process(
        "unet-train", *RESUMABLE_RUN, f"ckpt_path={ckpt_path}", f"hydra.run.dir={run_dir}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_one(
    uninterrupted_run, tmp_path, monkeypatch, capsys
):
    """A subprocess killed (SIGKILL) mid-epoch, then resumed by the command as a user would.

    Slow: a command's start (importing torch and Lightning) under load; its 11 steps are a small part.
    """
    interrupted = tmp_path / "interrupted"
    process, marker, output = start_held_run(interrupted, MID_EPOCH_STEP, *RESUMABLE_RUN)
    wait_until_held(marker, process, output)
    process.kill()
    process.wait()
    assert not (interrupted / "metrics.json").exists(), "the run ended before it was killed"
    assert saved_step(interrupted) == STEPS_PER_EPOCH, "last.ckpt is not the first epoch's end"

    resumed = resume(interrupted, "last", tmp_path, monkeypatch, capsys)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The killed run's lock was left behind; its process is gone, so the resumed run took it over.
    assert (
        "taking over" in resumed.stdout + resumed.stderr
        and "which no longer runs" in resumed.stdout + resumed.stderr
    )
    assert not (interrupted / "run.lock").exists()

    assert_same_run(interrupted, uninterrupted_run, epochs=2)


def test_a_run_stopped_mid_epoch_by_sigterm_saves_and_resumes_exactly_where_it_stopped(
    uninterrupted_run, tmp_path, monkeypatch, capsys
):
    """A subprocess: SIGTERM reaches a running unet-train, which saves a checkpoint and exits with 143.

    Resumed from the middle of an epoch, the run trains that epoch's remaining batches (not its first
    ones again) with the same seeds, so it ends exactly like the uninterrupted run.

    Slow: a command's start (importing torch and Lightning) under load; its 11 steps are a small part.
    """
    interrupted = tmp_path / "interrupted"
    process, marker, output = start_held_run(interrupted, MID_EPOCH_STEP, *RESUMABLE_RUN)
    wait_until_held(marker, process, output)
    signal_held_run(process, marker, signal.SIGTERM)
    assert process.wait(timeout=120) == 143, output.read_text()[-2000:]
    # The step the signal landed in, not the epoch end's (step 8) nor a later one.
    assert saved_step(interrupted) == MID_EPOCH_STEP, "last.ckpt was not written on SIGTERM"
    log = (interrupted / "train.log").read_text()
    assert f"stopped by SIGTERM; resume with ckpt_path={interrupted}" in log

    resumed = resume(interrupted, str(interrupted), tmp_path, monkeypatch, capsys)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stdout + resumed.stderr

    assert_same_run(interrupted, uninterrupted_run, epochs=2)


def test_a_sigterm_after_the_step_end_check_still_saves_that_step(uninterrupted_run, tmp_path):
    """SIGTERM landing after last.ckpt's step-end check, as the step's metrics are logged: Lightning's own
    check stops the run there, and the step is still saved and resumes exactly (sent by this process to
    itself, at that point, by a logger of tests/signal_gate.py)."""
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "train",
        [f"paths.output_dir={run_dir}", *RESUMABLE_RUN, "trainer.log_every_n_steps=1",
         "+logger.sigterm._target_=signal_gate.SigtermWhenLogging", "+logger.sigterm.epoch=1"],
    )  # fmt: skip
    with pytest.raises(SIGTERMException):
        train(cfg)
    assert saved_step(run_dir) == STEPS_PER_EPOCH + 1, "the step Lightning stopped at was not saved"
    train(compose_config("train", [f"paths.output_dir={run_dir}", *RESUMABLE_RUN, "ckpt_path=last"]))
    assert_same_run(run_dir, uninterrupted_run, epochs=2)


# What Lightning printed in a normal run that misled or could not be acted on.
NOISE = (
    "litlogger", "FLOPs", "weights_only", "LeafSpec", "multiple `ModelCheckpoint`", "not supported by the model summary",
)  # fmt: skip


def test_ctrl_c_saves_last_checkpoint_and_a_second_run_into_the_directory_is_refused(
    tmp_path, monkeypatch, capsys
):
    """A subprocess: Ctrl-C (SIGINT) reaches a running unet-train and what its terminal shows is read.

    Slow: a command's start (importing torch and Lightning) under load; its 11 steps are a small part.
    """
    run_dir = tmp_path / "run"
    process, marker, output = start_held_run(run_dir, MID_EPOCH_STEP, *RESUMABLE_RUN)
    try:
        wait_until_held(marker, process, output)
        second = run_in_process(
            "unet-train", *TINY_RUN, "ckpt_path=last", f"hydra.run.dir={run_dir}",
            cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"{run_dir} is in use by another unet-train" in second.stderr
        assert f"pid {process.pid} on host {socket.gethostname()}" in second.stderr
        signal_held_run(process, marker, signal.SIGINT)
        assert process.wait(timeout=120) == 130, output.read_text()[-2000:]
    finally:
        process.kill()
    # The step Ctrl-C landed in, past the finished first epoch (not that epoch end's checkpoint).
    assert saved_step(run_dir) == MID_EPOCH_STEP, "last.ckpt was not written on Ctrl-C"
    text = output.read_text()
    assert f"stopped by Ctrl-C (SIGINT); resume with ckpt_path={run_dir}" in text
    assert not [noise for noise in NOISE if noise in text]
    assert not (run_dir / "run.lock").exists(), "the stopped run did not release its directory"


def test_a_normal_run_prints_no_misleading_notices(tmp_path):
    """A subprocess: what a user's terminal shows, warnings included (pytest would capture them).

    Slow: a command's start (importing torch and Lightning) under load; its 2 steps are a small part.
    """
    result = run_cli(
        "unet-train", *TINY_RUN, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.precision=bf16-mixed",  # what plans choose where bf16 is fast
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert not [noise for noise in NOISE if noise in result.stdout + result.stderr]
    assert "27.6 K trainable parameters" in result.stdout + result.stderr  # the summary is still there


def test_last_checkpoint_is_written_at_every_epoch_end_even_without_validation(tmp_path):
    # Validation every third epoch: in two epochs none runs, yet both epochs end in last.ckpt.
    train(
        compose_config(
            "train",
            [
                f"paths.output_dir={tmp_path}",
                *replacing(TINY_RUN, *TINY_NET),
                "trainer.check_val_every_n_epoch=3",
                "test=false",
            ],
        )
    )
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2 * 64 // 16


def test_diverged_weights_are_never_saved_and_the_stop_names_them(tmp_path, monkeypatch, capsys):
    # lr=inf: the first step's loss is finite, its update leaves NaN weights; the epoch ends before any
    # validation or further step could notice, where last.ckpt would be written.
    code, err = run_app(
        train_app, *replacing(TINY_RUN, *TINY_NET, "data.num_train=16"), "model.optimizer.lr=inf", "trainer.check_val_every_n_epoch=2",
        f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "the weights became non-finite" in err and "net." in err
    assert "the last good checkpoint is kept" in err
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


def test_resuming_with_another_network_names_the_options_that_differ(
    small_checkpoint, tmp_path, monkeypatch, capsys
):
    code, err = run_app(
        train_app, f"ckpt_path={small_checkpoint}", *TINY_RUN, "model.net.depth=3", "model.upsample=nearest",
        f"hydra.run.dir={tmp_path / 't'}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2 and str(small_checkpoint) in err
    assert "model.net.depth: 2 in the checkpoint, 3 in the config" in err
    assert "model.upsample: bilinear in the checkpoint, nearest in the config" in err
    assert "Traceback" not in err


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(
    small_checkpoint, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    shutil.copytree(small_checkpoint.parent.parent, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:  # the disk fills up as the new last.ckpt is flushed to it
        if "last.ckpt" in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    code, err = run_app(
        train_app,
        *TINY_RUN,
        "ckpt_path=last",
        "resume_changes=apply",  # one epoch more than the checkpoint's run
        f"hydra.run.dir={run_dir}",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "the disk is full" in errors[0] and str(last) in errors[0]
    monkeypatch.undo()
    assert last.read_bytes() == before
    torch.load(last, weights_only=True)
    assert not [path.name for path in last.parent.iterdir() if path.name.endswith(".tmp")]


def test_a_run_directory_held_by_a_live_process_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        code, err = run_app(
            train_app, *TINY_RUN, f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys
        )
    finally:
        holder.kill()
        holder.wait()
    assert (
        code == 2
        and f"{tmp_path} is in use" in err
        and f"pid {holder.pid} on host {socket.gethostname()}" in err
    )
    # Its process gone, the same lock is stale: taken over with a warning.
    with lock_directory(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run.lock").exists()
