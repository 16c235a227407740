"""Per-image scores: exact values on hand-made maps, ``per_image.csv``'s format, names and refusals, and a
training run on image files whose rows name those files and add up to its epoch scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_RUN
from PIL import Image

from unet.evaluation.boundary import boundary_f1
from unet.evaluation.checkerboard import checkerboard_score
from unet.evaluation.per_image import (
    image_names,
    image_scores,
    per_image_columns,
    read_per_image,
    worst_images,
    write_per_image,
)
from unet.evaluation.scores import confusion_per_image
from unet.training.run import train

CLASSES = ["a", "b", "Class C"]
IGNORE = 255

# Image 0: class c absent from truth and prediction. Image 1: class a predicted only on ignored pixels.
TARGET = torch.tensor(
    [
        [[0, 0, 1, 1], [0, 0, 1, 1]],
        [[2, 2, IGNORE, IGNORE], [2, 2, IGNORE, IGNORE]],
    ]
)
PREDS = torch.tensor(
    [
        [[0, 0, 0, 1], [0, 0, 1, 1]],
        [[2, 1, 0, 0], [2, 2, 0, 0]],
    ]
)


def logits_of(preds: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    """Logits ``(B, K, H, W)`` whose argmax is ``preds``, with some spatial variation for the checkerboard."""
    logits = 4.0 * F.one_hot(preds, num_classes).permute(0, 3, 1, 2).float()
    return logits + 0.1 * torch.arange(preds.shape[-1]).float()


def test_hand_made_maps_score_exactly_and_absent_classes_stay_undefined():
    logits = logits_of(PREDS)
    first, second = image_scores(logits, TARGET, CLASSES, ignore_index=IGNORE)

    # Image 0: a: 4 right, 1 b predicted as a; b: 3 right, 1 missed; c in neither map.
    assert first["iou/a"] == pytest.approx(4 / 5) and first["dice/a"] == pytest.approx(8 / 9)
    assert first["iou/b"] == pytest.approx(3 / 4) and first["dice/b"] == pytest.approx(6 / 7)
    assert math.isnan(first["iou/class_c"]) and math.isnan(first["dice/class_c"])
    assert first["miou"] == pytest.approx((4 / 5 + 3 / 4) / 2)
    assert first["dice"] == pytest.approx((8 / 9 + 6 / 7) / 2)
    assert first["pixel_acc"] == pytest.approx(7 / 8)

    # Image 1: 4 valid pixels (the ignored half predicted as a counts for nothing): c 3 of 4, one c read as b.
    assert math.isnan(second["iou/a"])
    assert second["iou/b"] == 0.0 and second["dice/b"] == 0.0  # predicted, never true: defined, and 0
    assert second["iou/class_c"] == pytest.approx(3 / 4)
    assert second["miou"] == pytest.approx((0 + 3 / 4) / 2)
    assert second["pixel_acc"] == pytest.approx(3 / 4)

    # Boundary F1 and checkerboard are the epoch definitions applied to the one image.
    for index, scores in enumerate((first, second)):
        assert scores["boundary_f1"] == pytest.approx(
            boundary_f1(PREDS[index], TARGET[index], 3, ignore_index=IGNORE)
        )
        assert scores["checkerboard"] == pytest.approx(checkerboard_score(logits[index : index + 1]))


def test_per_image_confusions_add_up_to_the_batch_matrix():
    preds = torch.randint(0, 4, (5, 9, 7))
    target = torch.randint(0, 4, (5, 9, 7))
    target[:, :2] = IGNORE
    per_image = confusion_per_image(preds, target, 4, IGNORE)
    valid = target != IGNORE
    batch = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(target[valid].tolist(), preds[valid].tolist(), strict=True):
        batch[t, p] += 1
    assert per_image.shape == (5, 4, 4)
    assert torch.equal(per_image.sum(0), batch)
    assert per_image[2].sum() == valid[2].sum()


def test_csv_has_the_contract_header_and_empty_cells_for_undefined_values(tmp_path):
    rows = [
        {"split": "val", "image": name, **scores}
        for name, scores in zip(
            ["x", "y"], image_scores(logits_of(PREDS), TARGET, CLASSES, IGNORE), strict=True
        )
    ]
    path = write_per_image(tmp_path / "per_image.csv", rows, CLASSES)

    lines = path.read_text().splitlines()
    assert lines[0] == (
        "split,image,miou,dice,pixel_acc,fwiou,boundary_f1,checkerboard,"
        "iou/a,iou/b,iou/class_c,dice/a,dice/b,dice/class_c"
    )
    assert lines[0].split(",") == per_image_columns(CLASSES)
    first = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert first["split"] == "val" and first["image"] == "x"
    assert first["iou/class_c"] == "" and first["dice/class_c"] == ""
    assert float(first["pixel_acc"]) == 7 / 8  # full precision: exact cross-checks stay exact

    read = read_per_image(path)
    assert [row["image"] for row in read] == ["x", "y"]
    assert math.isnan(read[1]["iou/a"]) and read[1]["iou/class_c"] == pytest.approx(3 / 4)


def test_an_existing_file_is_never_overwritten_and_names_are_unique(tmp_path):
    path = tmp_path / "per_image.csv"
    path.write_text("earlier\n")
    row = {"split": "val", "image": "x", **image_scores(logits_of(PREDS[:1]), TARGET[:1], CLASSES, IGNORE)[0]}
    with pytest.raises(FileExistsError, match="per_image.csv already exists"):
        write_per_image(path, [row], CLASSES)
    assert path.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["per_image.csv"], "no staged file left behind"
    write_per_image(path, [row], CLASSES, replace=True)  # a resumed run rewrites its own
    assert read_per_image(path)[0]["image"] == "x"
    with pytest.raises(ValueError, match="image 'x' appears twice in the val split"):
        write_per_image(tmp_path / "twice.csv", [row, row], CLASSES)


def test_image_names_are_file_stems_relative_to_the_shared_directory():
    assert image_names(["/d/images/20.png", "/d/images/21.png"], "val") == ["20", "21"]
    assert image_names(["/d/a/x.png", "/d/b/x.png"], "val") == ["a/x", "b/x"]
    assert image_names(["/d/x.png", "/d/x.tif"], "test") == ["x.png", "x.tif"]
    assert image_names(["/d/only.png"], "val") == ["only"]
    assert image_names([None, None, None], "test") == ["test_0", "test_1", "test_2"]


def test_worst_images_skip_undefined_scores():
    rows = [
        {"image": "a", "miou": 0.5},
        {"image": "b", "miou": math.nan},
        {"image": "c", "miou": 0.2},
        {"image": "d", "miou": 0.9},
    ]
    assert [row["image"] for row in worst_images(rows, 2)] == ["c", "a"]


def write_folder(root: Path, count: int = 6, size: tuple[int, int] = (24, 32)) -> Path:
    """Gray images whose masks hold raw 0, 255 and 100 (void), a different void share per image."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / "images" / f"s{index}.png")
        mask = rng.choice(np.array([0, 255], dtype=np.uint8), size)
        mask[: index + 1] = 100
        Image.fromarray(mask).save(root / "masks" / f"s{index}.png")
    return root


def test_a_training_run_on_files_writes_one_named_row_per_image_that_adds_up(compose_config, tmp_path):
    root = write_folder(tmp_path / "data")
    tiny_model = [o for o in TINY_RUN if not o.startswith("data.")]
    cfg = compose_config(
        "train",
        "data=folder", f"data.root={root}", "data.in_channels=1", "data.num_workers=0", "data.batch_size=2",
        "+data.mask_mapping={0: 0, 255: 1, 100: 255}", "data.ignore_index=255",
        "+data.val_stems=[s1,s4]", "+data.test_stems=[s5]", "data.train_transforms=null", "data.epoch_size=null",
        "data.mean=[0.5]", "data.std=[0.25]", *tiny_model,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)

    rows = read_per_image(tmp_path / "run" / "per_image.csv")
    assert [(row["split"], row["image"]) for row in rows] == [("val", "s1"), ("val", "s4"), ("test", "s5")]
    assert metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    for split, stems in (("val", ["s1", "s4"]), ("test", ["s5"])):
        # Each image's accuracy weighted by its valid pixels is the epoch's pixel accuracy (logged as float32).
        valid = [int((np.asarray(Image.open(root / "masks" / f"{stem}.png")) != 100).sum()) for stem in stems]
        accuracies = [row["pixel_acc"] for row in rows if row["split"] == split]
        pooled = sum(a * n for a, n in zip(accuracies, valid, strict=True)) / sum(valid)
        assert pooled == pytest.approx(metrics[f"{split}/pixel_acc"], rel=1e-6)
