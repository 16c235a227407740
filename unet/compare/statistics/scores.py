"""Per-image scores of a comparison: every ok run's ``per_image.csv`` as ``scores[method, seed, image]``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unet.evaluation.per_image import FILENAME, read_per_image
from unet.utils.errors import InputFileError, InputNotFoundError


@dataclass(frozen=True)
class Scores:
    """Per-image scores of a comparison: ``values[method, seed, image]``, shape (M, S, N), no NaN.

    ``dropped_images`` were undefined (an empty cell) in at least one run and are left out of every
    method, so the comparison stays paired; ``excluded_runs`` are runs left out, each with why.
    """

    metric: str
    split: str
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    images: tuple[str, ...]
    values: np.ndarray
    dropped_images: tuple[str, ...] = ()
    excluded_runs: tuple[str, ...] = ()


def run_scores(path: str | Path, metric: str, split: str) -> dict[str, float]:
    """``{image: score}`` of one run's ``per_image.csv`` for ``metric`` on ``split`` (NaN where the cell is empty).

    The file is read by :func:`unet.evaluation.per_image.read_per_image` (its one reader); this adds
    what a comparison needs: the column and the split present, each image once.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path} not found: the run wrote no per-image scores")
    try:
        rows = read_per_image(path)
    except ValueError as error:
        raise InputFileError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    if rows and metric not in rows[0]:
        raise InputFileError(f"{path} has no column {metric!r} (columns: {', '.join(map(str, rows[0]))})")
    scores: dict[str, float] = {}
    for row in rows:
        if row["split"] != split:
            continue
        image = str(row["image"])
        if image in scores:
            raise InputFileError(f"{path}: image {image!r} appears twice in split {split!r}")
        scores[image] = float(row[metric])
    if not scores:
        splits = ", ".join(sorted({str(row["split"]) for row in rows})) or "none"
        raise InputFileError(f"{path} has no rows of split {split!r} (splits present: {splits})")
    return scores


@dataclass(frozen=True)
class _PairedRuns:
    """The ok runs kept, by ``(method, seed)``: every method on the same seeds; the others with why."""

    methods: list[str]
    seeds: list[Any]
    runs: dict[tuple[str, Any], Mapping[str, Any]]
    excluded: list[str]


def _paired_runs(records: Sequence[Mapping[str, Any]]) -> _PairedRuns:
    """The ok runs of the seeds that succeeded for every method with an ok run."""
    ok = [record for record in records if record.get("status") == "ok"]
    excluded = [
        f"{record['method']} seed {record['seed']}: failed"
        for record in records
        if record.get("status") != "ok"
    ]
    methods = list(dict.fromkeys(record["method"] for record in ok))
    if not methods:
        raise ValueError("no successful run to take per-image scores from")
    seeds_of = {method: {record["seed"] for record in ok if record["method"] == method} for method in methods}
    seeds = [
        seed
        for seed in dict.fromkeys(record["seed"] for record in ok)
        if all(seed in seeds_of[m] for m in methods)
    ]
    if not seeds:
        raise ValueError(f"no seed succeeded for every method ({', '.join(methods)}): nothing is paired")
    excluded += [
        f"{record['method']} seed {record['seed']}: seed not successful for every method"
        for record in ok
        if record["seed"] not in seeds
    ]
    runs = {(record["method"], record["seed"]): record for record in ok}
    return _PairedRuns(methods, seeds, runs, excluded)


def _require_same_images(
    scores: Mapping[str, float], images: Sequence[str], run_dir: Path, first_run: str, split: str
) -> None:
    """Refuse a run scored on other images than the first run, naming both runs and an image."""
    missing = [image for image in images if image not in scores]
    if missing:
        raise InputFileError(
            f"run {run_dir} has no {split!r} score for image {missing[0]!r} of run {first_run} "
            f"({len(missing)} missing): the methods must be scored on the same images"
        )
    if len(scores) != len(images):
        extra = next(image for image in scores if image not in set(images))
        raise InputFileError(
            f"run {run_dir} scores image {extra!r} on {split!r}, which run {first_run} does not: "
            "the methods must be scored on the same images"
        )


def _score_matrix(
    paired: _PairedRuns, metric: str, split: str, file_name: str
) -> tuple[list[str], np.ndarray]:
    """The images (in the first run's order) and ``values[method, seed, image]``, NaN where undefined."""
    images: list[str] = []
    first_run = ""
    values = np.empty((len(paired.methods), len(paired.seeds), 0))
    for m, method in enumerate(paired.methods):
        for s, seed in enumerate(paired.seeds):
            run_dir = Path(paired.runs[method, seed]["run_dir"])
            scores = run_scores(run_dir / file_name, metric, split)
            if not first_run:
                images, first_run = list(scores), str(run_dir)
                values = np.full((len(paired.methods), len(paired.seeds), len(images)), math.nan)
            _require_same_images(scores, images, run_dir, first_run, split)
            values[m, s] = [scores[image] for image in images]
    return images, values


def load_scores(
    records: Sequence[Mapping[str, Any]], metric: str, split: str, file_name: str = FILENAME
) -> Scores:
    """``scores[method, seed, image]`` of ``metric`` on ``split`` from the ``per_image.csv`` of each ok run.

    ``records`` are :func:`~unet.compare.runs.collect_records`'s. Failed runs are left out; so that
    every method is scored on the same seeds, a seed is kept only where every method with an ok run
    succeeded (the others are listed in ``excluded_runs``). Images are matched by name: a run that
    lacks an image of the first run, or has one more, is an error naming the run and the image.
    Images undefined in any run are dropped from all (``dropped_images``).
    """
    paired = _paired_runs(records)
    images, values = _score_matrix(paired, metric, split, file_name)
    defined = ~np.isnan(values).any(axis=(0, 1))
    if not defined.any():
        raise ValueError(
            f"{metric!r} on {split!r} is undefined (empty) for every image in some run: nothing to compare"
        )
    return Scores(
        metric=metric,
        split=split,
        methods=tuple(paired.methods),
        seeds=tuple(paired.seeds),
        images=tuple(image for image, keep in zip(images, defined, strict=True) if keep),
        values=values[:, :, defined],
        dropped_images=tuple(image for image, keep in zip(images, defined, strict=True) if not keep),
        excluded_runs=tuple(paired.excluded),
    )
