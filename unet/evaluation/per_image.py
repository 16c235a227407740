"""Per-image scores and ``per_image.csv``: one row per scored image, so comparisons can pair images.

Epoch scores pool every pixel of a split into one number, which hides whether a method is better on
most images or much better on a few; statistics over methods and seeds (paired tests, bootstraps)
need each image's own score, paired by ``(split, image)`` across runs.

The file's columns (a contract the comparison reads):
``split,image,miou,dice,pixel_acc,fwiou,boundary_f1,checkerboard,iou/<class>...,dice/<class>...``, where
``<class>`` is the class name as metric tags spell it (:func:`unet.evaluation.scores.metric_key`, as
in ``metrics.json``). Per image: IoU/Dice per class, their means over the classes defined in that
image (present in its truth or its prediction; ``ignore_index`` pixels are not counted), pixel
accuracy over its valid pixels and the frequency-weighted IoU (:mod:`unet.evaluation.scores`), boundary F1 (:mod:`unet.evaluation.boundary`) and the checkerboard
score of its logits (:mod:`unet.evaluation.checkerboard`), each exactly as the epoch metrics define
them but on that image alone. An undefined value (a class in neither the prediction nor the truth;
every pixel ignored) is an empty cell, never 0 or 1.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

import torch

from unet.evaluation.boundary import boundary_counts_per_image, f1_from_counts
from unet.evaluation.checkerboard import checkerboard_energies_per_image, score_from_energies
from unet.evaluation.scores import confusion_per_image, metric_key, scores_from_confusion
from unet.utils.class_maps import class_map
from unet.utils.errors import InputFileError, OutputExistsError
from unet.utils.files import publish_new, write_text

FILENAME = "per_image.csv"
# The columns before the per-class ones; text first, then every score.
KEY_COLUMNS = ("split", "image")
SCORE_COLUMNS = ("miou", "dice", "pixel_acc", "fwiou", "boundary_f1", "checkerboard")

# A row: ``split`` and ``image`` (str), then one float per score column (NaN: undefined).
Row = dict[str, str | float]


def per_image_columns(class_names: Sequence[str]) -> list[str]:
    """The header of ``per_image.csv`` for these classes (see the module doc)."""
    keys = [metric_key(name) for name in class_names]
    return [*KEY_COLUMNS, *SCORE_COLUMNS, *(f"iou/{key}" for key in keys), *(f"dice/{key}" for key in keys)]


def image_scores(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_names: Sequence[str],
    ignore_index: int | None = None,
    boundary_tolerance: int = 2,
    checkerboard_period: int = 2,
) -> list[dict[str, float]]:
    """Every score column of each image of a batch: logits ``(B, K, H, W)``, target ``(B, H, W)``.

    The predictions are the logits' argmax, as the epoch metrics take them, so per-image and epoch
    scores describe the same predictions; the checkerboard is measured at ``checkerboard_period``.
    """
    preds = class_map(logits)
    num_classes = len(class_names)
    boundary = boundary_counts_per_image(preds, target, num_classes, boundary_tolerance, ignore_index).cpu()
    periodic, total = (
        energy.cpu() for energy in checkerboard_energies_per_image(logits, checkerboard_period)
    )
    rows = []
    for index in range(len(preds)):
        # One image's K x K matrix at a time: the batch's (B, K, K) would hold B of them at many classes.
        one = slice(index, index + 1)
        confusion = confusion_per_image(preds[one], target[one], num_classes, ignore_index)[0].cpu()
        scores = scores_from_confusion(confusion, class_names)
        scores["boundary_f1"] = f1_from_counts(boundary[index]) if confusion.sum() > 0 else math.nan
        scores["checkerboard"] = score_from_energies(periodic[index], total[index])
        rows.append(scores)
    return rows


def image_names(files: Sequence[str | None], split: str) -> list[str]:
    """Stable, unique names of a split's samples, from the file each was read from (``None``: generated).

    Files are named by their path relative to the directory all of them share, without the suffix
    (``images/07.png`` -> ``07``): the same on every run over the same files, wherever the data lives.
    Generated samples (or any split with one sample not read from a file) are ``<split>_<index>``.
    """
    if not files or any(file is None for file in files):
        return [f"{split}_{index}" for index in range(len(files))]
    paths = [PurePath(file) for file in files]  # type: ignore[arg-type]
    base = os.path.commonpath([str(path.parent) for path in paths])
    relative = [path.relative_to(base) for path in paths]
    for names in (
        [path.with_suffix("").as_posix() for path in relative],  # a.png -> a
        [path.as_posix() for path in relative],  # a.png and a.tif side by side
    ):
        if len(set(names)) == len(names):
            return names
    return [f"{split}_{index}" for index in range(len(files))]  # one file listed twice


def format_value(value: str | float) -> str:
    """A cell: text as is, a number at full precision (exact cross-checks), undefined (NaN) empty."""
    if isinstance(value, str):
        return value
    value = float(value)
    return "" if math.isnan(value) else repr(value)


def per_image_text(rows: Sequence[Mapping[str, str | float]], class_names: Sequence[str]) -> str:
    """``per_image.csv``'s content: the header, then ``rows`` in their order (each must hold every column)."""
    columns = per_image_columns(class_names)
    seen: set[tuple[str, str]] = set()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        missing = [column for column in columns if column not in row]
        if missing:
            raise ValueError(f"per-image row {row.get('image')!r} lacks {', '.join(missing)}")
        key = (str(row["split"]), str(row["image"]))
        if key in seen:
            raise ValueError(f"image {key[1]!r} appears twice in the {key[0]} split of the per-image scores")
        seen.add(key)
        writer.writerow([format_value(row[column]) for column in columns])
    return buffer.getvalue()


def write_per_image(
    path: str | Path,
    rows: Sequence[Mapping[str, str | float]],
    class_names: Sequence[str],
    replace: bool = False,
) -> Path:
    """Write ``per_image.csv`` atomically; an existing file is never replaced unless ``replace``.

    ``replace`` is for a run rewriting its own file together with its ``metrics.json`` (a resumed
    run): the rows must describe the weights the metrics do.
    """
    path = Path(path)
    text = per_image_text(rows, class_names)
    if replace:
        return write_text(path, text)
    if path.exists():
        raise OutputExistsError(f"{path} already exists; nothing was overwritten")
    staged = path.with_name(f".{path.name}.{os.getpid()}.staged")
    try:
        write_text(staged, text)
        return publish_new(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def read_per_image(path: str | Path) -> list[Row]:
    """The rows of a ``per_image.csv``: ``split`` and ``image`` as text, every score a float (NaN: empty)."""
    path = Path(path)
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or list(reader.fieldnames[: len(KEY_COLUMNS)]) != list(KEY_COLUMNS):
            raise InputFileError(
                f"{path} is not a per-image score file: its header must start with split,image"
            )
        return [
            {
                column: (value if column in KEY_COLUMNS else (float(value) if value else math.nan))
                for column, value in row.items()
            }
            for row in reader
        ]


def worst_images(rows: Sequence[Mapping[str, str | float]], count: int = 5, key: str = "miou") -> list[Row]:
    """The ``count`` rows with the lowest ``key`` (ties by name), undefined scores left out."""
    scored = [dict(row) for row in rows if not math.isnan(float(row[key]))]
    return sorted(scored, key=lambda row: (float(row[key]), str(row["image"])))[:count]
