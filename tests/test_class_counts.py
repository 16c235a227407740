"""A class count that would not fit in memory (or in the run's time budget) is refused at once, with
both estimates, before anything is allocated or written (it used to time a training step silently for
minutes); a large one that fits says what it costs before the command loads its libraries."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_refusals import error_line, run_app

from unet.utils.config import compose_config
from unet.utils.config_checks import check_before_running
from unet.utils.errors import ConfigError
from unet.utils.limits import (
    GB,
    ClassCountMemory,
    ClassCountTime,
    MachineRate,
    check_classes_fit,
    machine_memory,
)

SIXTY_THOUSAND = ClassCountMemory(60_000, batch=1, height=16, width=16)
# A machine that makes one element-wise pass at 1 ns an element and a small operation in 1 us.
RATE = MachineRate(element_seconds=1e-9, operation_seconds=1e-6)


def write_folder(root):
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "masks" / f"{i}.png")
    return root


def test_the_refusal_gives_the_memory_and_the_time_estimates():
    assert SIXTY_THOUSAND.confusion == 4 * 60_000**2 * 8  # train, val, test and one image's
    assert SIXTY_THOUSAND.logits == 4 * 60_000 * 16 * 16 * 4
    seconds = ClassCountTime(60_000, 1, 16, 16, RATE)
    with pytest.raises(ConfigError) as error:
        check_classes_fit(SIXTY_THOUSAND, "data.num_classes", seconds, memory=16 * GB)
    assert str(error.value) == (
        "data.num_classes=60,000 needs at least 107.5 GB: 4 confusion matrices of 60,000 x 60,000 "
        "(107.3 GB) and logits of 1 x 60,000 x 16 x 16 with their gradients (0.2 GB) and about 0.61 s a "
        "training step and 2 min a validation batch for its classes alone; this machine has 16.0 GB: "
        "use fewer classes"
    )
    check_classes_fit(ClassCountMemory(1000, 4, 256, 256), "data.num_classes", memory=16 * GB)


def test_a_class_count_that_would_outlast_the_budget_is_refused_with_both_estimates():
    five_thousand = ClassCountMemory(5000, 1, 16, 16)
    seconds = ClassCountTime(5000, 1, 16, 16, RATE)  # a validation batch: 7.6 s
    check_classes_fit(five_thousand, "data.num_classes", seconds, memory=16 * GB, budget_s=60)
    with pytest.raises(ConfigError) as error:
        check_classes_fit(five_thousand, "data.num_classes", seconds, memory=16 * GB, budget_s=1)
    assert str(error.value) == (
        "data.num_classes=5,000 needs about 0.051 s a training step and 7.6 s a validation batch for its "
        "classes alone (and 0.8 GB: 4 confusion matrices of 5,000 x 5,000 (0.7 GB) and logits of 1 x 5,000 "
        "x 16 x 16 with their gradients (0.0 GB)); trainer.max_time is 1 s: use fewer classes or a longer "
        "trainer.max_time"
    )


def test_the_app_refuses_a_class_count_its_budget_cannot_hold_in_one_line(tmp_path, monkeypatch, capsys):
    code, err, _ = run_app(
        "train", "data=folder", f"data.root={write_folder(tmp_path / 'd')}", "data.num_classes=5000",
        "trainer.max_time=0.01", f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert (
        line.startswith("error: data.num_classes=5,000 needs about ") and "trainer.max_time is 0.01 s" in line
    )
    assert not (tmp_path / "run").exists()


def test_a_large_class_count_is_announced_with_both_estimates_before_the_work(tmp_path, caplog):
    folder = ["data=folder", f"data.root={write_folder(tmp_path / 'd')}"]
    with caplog.at_level(logging.WARNING, logger="unet"):
        check_before_running(compose_config("train", [*folder, "data.num_classes=3000"]))
    (line,) = [r.getMessage() for r in caplog.records if "data.num_classes=3,000" in r.getMessage()]
    assert " GB: 4 confusion matrices of 3,000 x 3,000" in line and "s a training step and " in line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="unet"):
        check_before_running(compose_config("train", [*folder, "data.num_classes=3"]))
    assert not caplog.records


# In a fresh interpreter (this one has torch loaded): unet-train's main, stopped at the first line it
# logs; prints that line and whether torch or Lightning had loaded by then.
FIRST_LINE = """
import logging, os, sys
class FirstLine(logging.Handler):
    def emit(self, record):
        loaded = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "lightning"})
        print(json.dumps([record.getMessage(), loaded]), flush=True)
        os._exit(0)
import json
logging.getLogger("unet").addHandler(FirstLine())
sys.argv = ["unet-train", *sys.argv[1:]]
from unet.apps.train import main
main()
"""


def test_unet_train_says_what_a_large_class_count_costs_before_loading_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FIRST_LINE, "data=folder", f"data.root={write_folder(tmp_path / 'd')}",
         "data.num_classes=3000", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    line, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert line.startswith("data.num_classes=3,000: a training step needs at least ")
    assert "s a training step and " in line and line.endswith(
        "loading the libraries and reading the data next"
    )
    assert loaded == []


def test_a_typed_batch_and_crop_enter_the_estimate(tmp_path):
    cfg = compose_config(
        "train",
        ["data=folder", f"data.root={write_folder(tmp_path / 'd')}", "data.num_classes=20000",
         "data.batch_size=64", "augment.crop=512"],
    )  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"logits of 64 x 20,000 x 512 x 512 .*or a smaller data.batch_size"
    ):
        check_before_running(cfg)


@pytest.mark.skipif((machine_memory() or 0) > SIXTY_THOUSAND.total, reason="this machine would fit them")
def test_sixty_thousand_classes_are_refused_in_one_line_before_the_run_directory_is_written(
    tmp_path, monkeypatch, capsys
):
    code, err, _ = run_app(
        "train", "data=folder", f"data.root={write_folder(tmp_path / 'd')}", "data.num_classes=60000",
        f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "data.num_classes=60,000 needs at least 107.5 GB" in line and "s a training step and" in line
    assert not (tmp_path / "run").exists()
