"""Score a checkpoint on one split (what ``unet-eval`` runs): the test split, val when there is none.

Writes ``eval.json`` (the split's scores) and ``per_image.csv`` (each image's own scores,
:mod:`unet.evaluation.per_image`) in the run directory, and prints the table and the worst images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from unet.data.base import SegmentationDataModule
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE
from unet.evaluation.per_image import Row, worst_images, write_per_image
from unet.models.networks import network_name
from unet.planning import reading_datamodule, without_plan
from unet.training.checkpoint import check_fits_data, module_from_checkpoint, training_data_config
from unet.training.metrics import metric_key
from unet.training.run import quiet_lightning_notices
from unet.utils.budget import max_time_timedelta
from unet.utils.errors import ConfigError, InputNotFoundError, OutputExistsError
from unet.utils.files import write_json
from unet.utils.tables import text_table

log = logging.getLogger(__name__)


def data_config(cfg: DictConfig, checkpoint: dict[str, Any], ckpt_path: str) -> DictConfig:
    """The data named on the command line, else the data the checkpoint was trained on."""
    if cfg.get("data") is not None:
        return cfg.data
    return training_data_config(checkpoint, ckpt_path)


def evaluation_checkpoint(ckpt_path: str) -> str:
    """The checkpoint file ``ckpt_path`` names: a file as given; a run directory (as ``unet-train`` takes for
    resuming) -> its ``checkpoints/best.ckpt``, the weights that scored best, which a run's metrics report."""
    path = Path(ckpt_path)
    if not path.is_dir():
        return ckpt_path
    for candidate in (path / "checkpoints" / "best.ckpt", path / "best.ckpt"):
        if candidate.is_file():
            return str(candidate)
    raise InputNotFoundError(
        f"ckpt_path={ckpt_path} is a directory without checkpoints/best.ckpt; name a run directory or a .ckpt file"
    )


def choose_split(requested: str, datamodule: SegmentationDataModule) -> str:
    if requested == "auto":
        return "test" if datamodule.has_test else "val"
    if requested not in ("train", "val", "test"):
        raise ConfigError(f"split must be auto, train, val or test; got {requested!r}")
    if requested == "test" and not datamodule.has_test:
        raise ConfigError("split=test was asked for but the data has no test split")
    return requested


def score_checkpoints(paths: Sequence[str | Path], split: str = "auto") -> tuple[str, list[dict[str, float]]]:
    """Score checkpoints of one training run on one split of its training data (the test split when
    there is one): returns the split and each checkpoint's metrics, keyed ``<split>/<name>``.

    The data is read once, from the first checkpoint; scoring runs in fp32 on one process, without the
    per-image table: this is for many snapshots of a run, as ``unet-eval`` is for one checkpoint.
    """
    if not paths:
        raise ValueError("no checkpoints to score")
    module, checkpoint = module_from_checkpoint(paths[0])
    normalization = {"mean": list(module.hparams.mean), "std": list(module.hparams.std)}
    datamodule = reading_datamodule(training_data_config(checkpoint, paths[0]), **normalization)
    split = choose_split(split, datamodule)
    datamodule.setup("test" if split == "test" else "validate")
    loader = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader}.get(
        split, datamodule.test_dataloader
    )()
    quiet_lightning_notices()
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = []
    for path in paths:
        if path != paths[0]:
            module, _ = module_from_checkpoint(path)
        raw = trainer.test(module, dataloaders=loader, verbose=False)[0]
        results.append({key.replace("test/", f"{split}/", 1): float(value) for key, value in raw.items()})
    return split, results


def format_table(metrics: dict[str, float], class_names: list[str], split: str) -> str:
    """Per-class IoU and Dice, then the means, and the scores that count pixels rather than classes (pixel
    accuracy, frequency-weighted IoU), as an aligned text table."""
    records = [
        {
            "class": name,
            "iou": metrics[f"{split}/iou/{metric_key(name)}"],
            "dice": metrics[f"{split}/dice/{metric_key(name)}"],
        }
        for name in class_names
    ]
    records.append({"class": "mean", "iou": metrics[f"{split}/miou"], "dice": metrics[f"{split}/dice"]})
    table = text_table(
        [("class", "class", "{}"), ("IoU", "iou", "{:.4f}"), ("Dice", "dice", "{:.4f}")], records, rule=True
    )
    return (
        f"{table}\npixel accuracy: {metrics[f'{split}/pixel_acc']:.4f}\n"
        f"frequency-weighted IoU: {metrics[f'{split}/fwiou']:.4f}"
    )


def format_worst(rows: list[Row], count: int) -> str:
    """The ``count`` images with the lowest mean IoU, worst first: where to look at the predictions."""
    worst = worst_images(rows, count)
    table = text_table([("image", "image", "{}"), ("mean IoU", "miou", "{:.4f}")], worst, rule=True)
    return f"the {len(worst)} worst images by mean IoU:\n{table}"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt_path`` (a file, or a run directory's best.ckpt); prints the table and the worst
    images, writes ``eval.json`` and ``per_image.csv`` in the run directory and returns the former."""
    output_dir = Path(cfg.paths.output_dir)
    if (output_dir / PER_IMAGE_FILE).exists():  # before the scoring, which may take long
        raise OutputExistsError(
            f"{output_dir / PER_IMAGE_FILE} already exists; choose a new hydra.run.dir (nothing was overwritten)"
        )
    show_worst = int(cfg.get("show_worst", 5))
    if show_worst < 0:
        raise ConfigError(f"show_worst must be >= 0 (images to list), got {show_worst}")
    ckpt_path = evaluation_checkpoint(str(cfg.ckpt_path))
    module, checkpoint = module_from_checkpoint(ckpt_path)
    # Data named on the command line is normalised as the model was trained; nothing else is planned.
    normalization = {"mean": list(module.hparams.mean), "std": list(module.hparams.std)}
    datamodule = reading_datamodule(data_config(cfg, checkpoint, ckpt_path), **normalization)
    check_fits_data(module.hparams, datamodule, ckpt_path)
    if datamodule.ignore_index != module.hparams.get("ignore_index"):  # e.g. data given a region of interest
        module, _ = module_from_checkpoint(ckpt_path, ignore_index=datamodule.ignore_index)
    split = choose_split(cfg.get("split", "auto"), datamodule)

    trainer = instantiate(
        without_plan(cfg.trainer, precision="32-true"),
        max_time=max_time_timedelta(cfg.trainer.get("max_time")),
    )
    datamodule.setup("test" if split == "test" else "validate")
    loader = {
        "train": datamodule.train_dataloader,
        "val": datamodule.val_dataloader,
        "test": datamodule.test_dataloader,
    }
    module.record_per_image(test_split=split)  # scored through the test loop whatever the split
    raw = trainer.test(module, dataloaders=loader[split](), verbose=False)[0]
    metrics = {key.replace("test/", f"{split}/", 1): float(value) for key, value in raw.items()}
    rows = module.per_image_rows.get("test", [])

    class_names = module.class_names
    result = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "split": split,
        "upsample": module.hparams.upsample,
        "network": network_name(module.network_config),
        "metrics": metrics,
        "per_class": [
            {
                "class": name,
                "iou": metrics[f"{split}/iou/{metric_key(name)}"],
                "dice": metrics[f"{split}/dice/{metric_key(name)}"],
            }
            for name in class_names
        ],
    }
    if trainer.is_global_zero:  # a distributed evaluation's scores are already gathered
        print(f"\n{ckpt_path} on the {split} split:\n{format_table(metrics, class_names, split)}\n")
        if show_worst:
            print(f"{format_worst(rows, show_worst)}\n")
        write_per_image(output_dir / PER_IMAGE_FILE, rows, class_names)
        path = write_json(output_dir / "eval.json", result)
        log.info("evaluation written to %s and %s", path, output_dir / PER_IMAGE_FILE)
    return result
