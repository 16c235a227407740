"""A class count that would not fit in memory is refused at once, with the estimate, before anything is
allocated or written (it used to time a training step silently for minutes)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_refusals import error_line, run_app

from unet.utils.config import compose_config
from unet.utils.config_checks import check_before_running
from unet.utils.errors import ConfigError
from unet.utils.limits import GB, ClassCountMemory, check_classes_fit, machine_memory

SIXTY_THOUSAND = ClassCountMemory(60_000, batch=1, height=16, width=16)


def write_folder(root):
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "masks" / f"{i}.png")
    return root


def test_the_estimate_counts_confusion_matrices_and_logits():
    assert SIXTY_THOUSAND.confusion == 3 * 60_000**2 * 8
    assert SIXTY_THOUSAND.logits == 4 * 60_000 * 16 * 16 * 4
    with pytest.raises(ConfigError) as error:
        check_classes_fit(SIXTY_THOUSAND, "data.num_classes", memory=16 * GB)
    assert str(error.value) == (
        "data.num_classes=60,000 needs at least 80.7 GB: 3 confusion matrices of 60,000 x 60,000 (80.5 GB) "
        "and logits of 1 x 60,000 x 16 x 16 with their gradients (0.2 GB); this machine has 16.0 GB: "
        "use fewer classes"
    )
    check_classes_fit(ClassCountMemory(1000, 4, 256, 256), "data.num_classes", memory=16 * GB)


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
    assert "data.num_classes=60,000 needs at least 80.7 GB" in error_line(err)
    assert not (tmp_path / "run").exists()
