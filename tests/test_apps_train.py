"""`unet-train` and `unet-eval` end to end: outputs written, scores reached, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FIXED_PLAN, TINY_RUN, run_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from unet.evaluation.per_image import read_per_image
from unet.models import UPSAMPLERS
from unet.training.evaluate import evaluate
from unet.training.run import train
from unet.utils.config import compose_config


def event_tags(directory: Path) -> dict[str, list[str]]:
    """All TensorBoard tags (scalars, images, hparams plugin) in the event files under ``directory``."""
    tags: dict[str, list[str]] = {"scalars": [], "images": [], "plugins": []}
    for events in directory.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        found = accumulator.Tags()
        tags["scalars"] += found["scalars"]
        tags["images"] += found["images"]
        try:
            tags["plugins"] += list(accumulator.PluginTagToContent("hparams"))
        except KeyError:  # this event file holds no hparams summary
            pass
    return tags


# A short real training on synthetic data that reliably learns (val mIoU 0.87 after 6 epochs; about 25 s
# on one core): batches of 8 and no augmentation learn in fewer passes than batches of 16 with flips.
LEARNING_EPOCHS = 6
LEARNING_BATCH = 8
LEARNING_RUN = [
    "model.upsample=transposed",
    "data.num_train=512",
    "data.num_val=32",
    "data.num_test=32",
    "data.image_size=48",
    f"data.batch_size={LEARNING_BATCH}",
    "data/augment=none",
    "model.net.base_channels=8",
    "model.net.depth=3",
    "model.optimizer.lr=0.01",
    f"trainer.max_epochs={LEARNING_EPOCHS}",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.prediction_images.every_n_epochs=4",
    *FIXED_PLAN,
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """The learning run, shared by the tests that inspect its outputs."""
    output_dir = tmp_path_factory.mktemp("run")
    train(compose_config("train", [f"paths.output_dir={output_dir}", *LEARNING_RUN]))
    return output_dir


def test_short_training_reaches_a_good_score_and_writes_metrics(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["val/miou"] >= 0.8, metrics
    for key in [
        "val/miou",
        "val/dice",
        "val/pixel_acc",
        "val/fwiou",
        "test/miou",
        "test/dice",
        "test/pixel_acc",
    ]:
        assert 0.0 <= metrics[key] <= 1.0
    assert {"val/iou/background", "val/iou/circle", "val/iou/square", "val/iou/triangle"} <= set(metrics)
    assert metrics["epochs"] == LEARNING_EPOCHS


def test_run_directory_holds_config_checkpoints_and_per_method_tensorboard(trained_run):
    assert (trained_run / "checkpoints" / "best.ckpt").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    config = (trained_run / "config.yaml").read_text()
    assert "upsample: transposed" in config
    method_dir = trained_run / "tensorboard" / "transposed" / "version_0"
    assert method_dir.is_dir()
    tags = event_tags(method_dir)
    assert {"val/miou", "val/dice", "val/pixel_acc", "train/miou", "val/iou/circle"} <= set(tags["scalars"])
    assert any(tag.startswith("lr-") for tag in tags["scalars"]), "learning rate is logged"
    assert "val/prediction" in tags["images"]
    assert tags["plugins"], "hyper-parameters and final metrics are in the HParams tab"
    assert "hparams/val/miou" in tags["scalars"]


def test_checkpoint_loads_with_weights_only_and_records_its_data(trained_run):
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["upsample"] == "transposed"
    assert checkpoint["unet_run_config"]["data"]["_target_"] == "unet.data.SyntheticDataModule"


def test_eval_from_checkpoint_alone_prints_table_and_writes_json(
    trained_run, compose_config, tmp_path, capsys
):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    result = evaluate(compose_config("eval", f"ckpt_path={ckpt}"))
    assert result["split"] == "test"
    assert result["upsample"] == "transposed"
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert result["metrics"]["test/miou"] == pytest.approx(trained["test/miou"], abs=1e-6)
    printed = capsys.readouterr().out
    assert "circle" in printed and "pixel accuracy" in printed and "frequency-weighted IoU" in printed
    written = json.loads((tmp_path / "eval.json").read_text())
    assert [row["class"] for row in written["per_class"]] == ["background", "circle", "square", "triangle"]


def test_eval_of_a_run_directory_scores_its_best_checkpoint_and_says_so(trained_run, compose_config, capsys):
    result = evaluate(compose_config("eval", f"ckpt_path={trained_run}", "split=val"))
    best = trained_run / "checkpoints" / "best.ckpt"
    assert result["checkpoint"] == str(best.resolve())
    assert f"{best} on the val split" in capsys.readouterr().out
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert result["metrics"]["val/miou"] == pytest.approx(trained["val/miou"], abs=1e-6)


def test_eval_of_a_directory_without_a_best_checkpoint_names_it(compose_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="is a directory without checkpoints/best.ckpt"):
        evaluate(compose_config("eval", f"ckpt_path={tmp_path}"))


def test_eval_rejects_data_that_does_not_fit_the_checkpoint(trained_run, compose_config):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    cfg = compose_config("eval", f"ckpt_path={ckpt}", "data=synthetic", "data.in_channels=3")
    with pytest.raises(ValueError, match="1 input channels in the checkpoint, 3 in the data"):
        evaluate(cfg)


def test_training_writes_one_row_per_val_and_test_image_that_adds_up_to_metrics(trained_run):
    rows = read_per_image(trained_run / "per_image.csv")
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for split in ("val", "test"):
        split_rows = [row for row in rows if row["split"] == split]
        assert [row["image"] for row in split_rows] == [f"{split}_{index}" for index in range(32)]
        # Equal-sized images without ignored pixels: the plain mean of accuracies is the pooled one.
        mean = sum(row["pixel_acc"] for row in split_rows) / len(split_rows)
        assert mean == pytest.approx(metrics[f"{split}/pixel_acc"], rel=1e-6)
        assert all(
            0.0 <= row["boundary_f1"] <= 1.0 and 0.0 <= row["checkerboard"] <= 1.0 for row in split_rows
        )
    assert {"iou/background", "iou/circle", "dice/triangle"} <= set(rows[0])


def test_eval_writes_the_same_per_image_rows_and_prints_the_worst_five(
    trained_run, compose_config, tmp_path, capsys
):
    evaluate(compose_config("eval", f"ckpt_path={trained_run}", "split=val"))
    rows = read_per_image(tmp_path / "per_image.csv")
    trained = [row for row in read_per_image(trained_run / "per_image.csv") if row["split"] == "val"]
    assert [row["image"] for row in rows] == [row["image"] for row in trained]
    for mine, theirs in zip(rows, trained, strict=True):  # the same weights score each image the same
        assert mine["miou"] == pytest.approx(theirs["miou"], abs=1e-9, nan_ok=True)

    printed = capsys.readouterr().out
    listing = printed.split("the 5 worst images by mean IoU:")[1].splitlines()[3:8]
    worst = sorted(rows, key=lambda row: (row["miou"], row["image"]))[:5]
    assert [line.split() for line in listing] == [[row["image"], f"{row['miou']:.4f}"] for row in worst]

    with pytest.raises(FileExistsError, match="per_image.csv already exists"):
        evaluate(compose_config("eval", f"ckpt_path={trained_run}", "split=val"))


def test_resume_from_last_checkpoint_continues_training(trained_run, compose_config, tmp_path):
    last = trained_run / "checkpoints" / "last.ckpt"
    overrides = [o for o in LEARNING_RUN if not o.startswith("trainer.max_epochs")]
    epochs = LEARNING_EPOCHS + 1
    cfg = compose_config(
        "train", *overrides, f"trainer.max_epochs={epochs}", f"ckpt_path={last}", "resume_changes=apply"
    )
    metrics = train(cfg)
    assert metrics["epochs"] == epochs
    assert metrics["global_step"] == epochs * 512 // LEARNING_BATCH
    assert metrics["val/miou"] >= 0.8


def test_rerun_into_a_finished_run_directory_is_refused(trained_run, compose_config):
    before = (trained_run / "metrics.json").read_text()
    with pytest.raises(FileExistsError, match="already holds the outputs"):
        train(compose_config("train", *TINY_RUN, output_dir=trained_run))
    assert (trained_run / "metrics.json").read_text() == before


@pytest.mark.parametrize("method", sorted(UPSAMPLERS))
def test_every_method_trains_through_the_config_key(method, compose_config):
    metrics = train(compose_config("train", *TINY_RUN, "trainer=debug", f"model.upsample={method}"))
    assert 0.0 <= metrics["val/miou"] <= 1.0


@pytest.mark.parametrize("method", sorted(UPSAMPLERS))
def test_every_method_trains_at_x4_per_level(method, compose_config):
    """``model.net.scale=4 model.net.depth=2``: 4x4 pools, and every decoder stage upsamples x4."""
    metrics = train(
        compose_config(
            "train", *TINY_RUN, "trainer=debug", f"model.upsample={method}", "model.net.scale=4",
            "model.net.base_channels=4", "data.num_train=16", "data.num_val=4", "data.num_test=4",
        )
    )  # fmt: skip
    assert 0.0 <= metrics["val/miou"] <= 1.0


def test_cli_trains_with_a_scale_per_level(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-train", "trainer=debug", *TINY_RUN, "model.net.scale=[4,2]", "model.net.base_channels=4",
        "model.upsample=transposed", "model.upsample_options={kernel_size: 8}", "paths.output_dir=run",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scale:\n    - 4\n    - 2" in (tmp_path / "run" / "config.yaml").read_text()


def test_cli_dry_run_sweep_writes_one_directory_per_method(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-train", "-m", "model.upsample=nearest,maxunpool", "trainer=debug", *TINY_RUN, "paths.log_dir=logs",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "logs" / "train" / "multiruns").glob("*/*/metrics.json"))
    assert len(runs) == 2
    methods = sorted(
        path.parent.joinpath("config.yaml").read_text().split("upsample: ")[1].split()[0] for path in runs
    )
    assert methods == ["maxunpool", "nearest"]


def test_cli_typo_in_a_key_fails_before_any_work(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-train", "model.upsampel=nearest", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode != 0
    assert "upsampel" in result.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.ckpt"))


def test_cli_unknown_group_option_lists_valid_ones(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-train", "data=imagenet", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode != 0
    assert "synthetic" in result.stderr and "isbi2012" in result.stderr


def test_cli_unknown_method_is_a_clear_error(tmp_path, monkeypatch, capsys):
    result = run_in_process(
        "unet-train", "model.upsample=bicubic", "trainer=debug", *TINY_RUN,
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown upsampling method 'bicubic'" in result.stderr
    assert "maxunpool" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_final_weights_compete_for_the_best_checkpoint(compose_config, tmp_path):
    """Validation every 2 epochs of 3: the third epoch's weights are validated after training, and
    best.ckpt holds whichever scored best."""
    train(compose_config("train", *TINY_RUN, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"))
    history = json.loads((tmp_path / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    if metrics["val/miou"] > history[0]["val/miou"] + 1e-6:
        assert best["global_step"] == metrics["global_step"]  # the final weights won
    else:
        assert metrics["val/miou"] == pytest.approx(history[0]["val/miou"], abs=1e-6)
