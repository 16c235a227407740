"""Loading a comparison's per-image scores: images matched by name, undefined ones dropped, seeds paired,
and a bad file or a run scored on other images refused with what is wrong."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from unet.compare.statistics.scores import load_scores, run_scores
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE

HEADER = [
    "split",
    "image",
    "miou",
    "dice",
    "pixel_acc",
    "boundary_f1",
    "checkerboard",
    "iou/cell",
    "dice/cell",
]


def write_run(root: Path, method: str, seed: int, miou: dict[str, str | float], split: str = "test") -> dict:
    """A run directory whose per_image.csv scores ``miou`` on ``split`` (and 0.5 on val); its record."""
    run_dir = root / method / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    with (run_dir / PER_IMAGE_FILE).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for image in miou:
            writer.writerow(["val", image, 0.5, 0.5, 0.9, 0.4, 0.01, 0.5, 0.6])
        for image, value in miou.items():
            writer.writerow([split, image, value, 0.7, 0.9, 0.4, 0.01, value, 0.6])
    return {"method": method, "seed": seed, "status": "ok", "error": None, "run_dir": str(run_dir)}


def test_load_scores_matches_images_by_name_and_drops_undefined_ones(tmp_path):
    records = [
        write_run(tmp_path, "bilinear", 0, {"a": 0.1, "b": 0.2, "c": 0.3}),
        write_run(tmp_path, "bilinear", 1, {"c": 0.33, "a": 0.11, "b": 0.22}),  # another row order
        write_run(tmp_path, "nearest", 0, {"a": 0.4, "b": "", "c": 0.6}),  # b undefined in one run
        write_run(tmp_path, "nearest", 1, {"a": 0.44, "b": 0.55, "c": 0.66}),
        {"method": "nearest", "seed": 2, "status": "failed", "error": "boom", "run_dir": str(tmp_path / "x")},
    ]
    scores = load_scores(records, "miou", "test")
    assert scores.methods == ("bilinear", "nearest") and scores.seeds == (0, 1)
    assert scores.images == ("a", "c") and scores.dropped_images == ("b",)
    np.testing.assert_allclose(scores.values, [[[0.1, 0.3], [0.11, 0.33]], [[0.4, 0.6], [0.44, 0.66]]])
    assert scores.excluded_runs == ("nearest seed 2: failed",)
    assert load_scores(records, "miou", "val").values.shape == (2, 2, 3)


def test_a_seed_that_failed_for_one_method_is_left_out_for_every_method(tmp_path):
    records = [
        write_run(tmp_path, method, seed, {"a": 0.1, "b": 0.2}) for method in ("x", "y") for seed in (0, 1)
    ]
    records[3]["status"] = "failed"
    scores = load_scores(records, "miou", "test")
    assert scores.seeds == (0,) and scores.values.shape == (2, 1, 2)
    assert "x seed 1: seed not successful for every method" in scores.excluded_runs


@pytest.mark.parametrize(
    ("other", "named"),
    [({"a": 0.1, "c": 0.2}, "'b'"), ({"a": 0.1, "b": 0.2, "d": 0.3}, "'d'")],
    ids=["missing", "extra"],
)
def test_load_scores_refuses_runs_scored_on_other_images_naming_run_and_image(tmp_path, other, named):
    records = [write_run(tmp_path, "x", 0, {"a": 0.1, "b": 0.2}), write_run(tmp_path, "y", 0, other)]
    with pytest.raises(ValueError, match="same images") as error:
        load_scores(records, "miou", "test")
    assert str(tmp_path / "y" / "seed_0") in str(error.value) and named in str(error.value)


def test_run_scores_says_what_is_wrong_with_the_file(tmp_path):
    record = write_run(tmp_path, "x", 0, {"a": 0.1, "b": "bad"})
    path = Path(record["run_dir"]) / PER_IMAGE_FILE
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*'bad'"):
        run_scores(path, "miou", "test")
    path = Path(write_run(tmp_path, "y", 0, {"a": 0.1, "b": 0.2})["run_dir"]) / PER_IMAGE_FILE
    with pytest.raises(ValueError, match="no column 'iou/road'"):
        run_scores(path, "iou/road", "test")
    with pytest.raises(ValueError, match="no rows of split 'train' .*splits present: test, val"):
        run_scores(path, "miou", "train")
    with pytest.raises(FileNotFoundError, match="per_image.csv not found"):
        run_scores(tmp_path / "nowhere" / PER_IMAGE_FILE, "miou", "test")
