"""Pairing images with masks named otherwise: patterns, regexes, manifests, any folders; GIF and palette
masks; check-data's pairing hint. Every file is written in its real format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import run_in_process
from PIL import Image

from unet.data import DataError, DataNotFoundError, FolderDataModule, PairingError
from unet.data.manifest import read_manifest
from unet.data.pairing import suggest_patterns
from unet.utils.config import compose_config

SIZE = 8


def gray(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)


def labels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 100).integers(0, 2, (SIZE, SIZE), dtype=np.uint8)


def save_palette(indices: np.ndarray, path: Path, palette: list[int] = (0, 0, 0, 255, 255, 255)) -> None:
    """A palette-mode ("P") file whose pixel values are ``indices`` (PNG or GIF by the suffix)."""
    image = Image.frombytes("P", indices.shape[::-1], indices.astype(np.uint8).tobytes())
    image.putpalette(list(palette))
    image.save(path)


def write_named(root: Path, image_names: list[str], mask_names: list[str], masks: str = "masks") -> Path:
    """Gray PNG images and palette GIF masks under ``root/images`` and ``root/<masks>``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / masks).mkdir(parents=True, exist_ok=True)
    for seed, (image, mask) in enumerate(zip(image_names, mask_names, strict=True)):
        Image.fromarray(gray(seed)).save(root / "images" / image)
        save_palette(labels(seed), root / masks / mask)
    return root


def folder(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "in_channels": 1, "batch_size": 2, "num_workers": 0, "val_fraction": 0.25}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def names(dm: FolderDataModule) -> list[tuple[str, str]]:
    return sorted((p.image.name, p.mask.name) for split in dm.pairs.values() for p in split)


# --- patterns --------------------------------------------------------------------------------------
def test_a_leading_id_pairs_scans_with_annotations_and_masks_read_their_palette_indices(tmp_path):
    images = ["07_scan.tif", "08_scan.tif", "10_scan.tif", "11_scan.tif"]
    masks = [name.replace("_scan.tif", "_annotation.gif") for name in images]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for seed, (image, mask) in enumerate(zip(images, masks, strict=True)):
        tifffile.imwrite(tmp_path / "images" / image, gray(seed))
        save_palette(labels(seed), tmp_path / "masks" / mask)
    dm = folder(tmp_path, mask_pattern="{id}_annotation")
    assert names(dm) == sorted(zip(images, masks, strict=True))
    dm.setup()
    source = dm.dataset("train").source
    for index in range(len(source)):
        seed = images.index(Path(source.name(index)).name)
        assert np.array_equal(source[index][1], labels(seed))  # indices, not the palette's 0/255 colours


def test_a_suffix_and_a_regex_pair_and_masks_live_in_any_folder(tmp_path):
    images = [f"img_{i:04d}.jpg" for i in range(4)]
    masks = [f"img_{i:04d}_mask.png" for i in range(4)]
    root = write_named(tmp_path, images, masks, masks="labels")
    dm = folder(root, train_masks="labels", mask_pattern="{stem}_mask")
    assert names(dm) == sorted(zip(images, masks, strict=True))
    by_regex = folder(root, train_masks="labels", mask_pattern=r"(?P<id>\d+)")
    assert names(by_regex) == names(dm)
    with pytest.raises(DataError, match=r"or a regex with a named group \(\?P<id>"):
        folder(root, train_masks="labels", mask_pattern=r"(\d+)")
    with pytest.raises(DataError, match="is not a valid regex"):
        folder(root, train_masks="labels", mask_pattern=r"(?P<id>[0-9)")
    with pytest.raises(DataError, match=r"exactly one \{stem\} or \{id\}"):
        folder(root, train_masks="labels", mask_pattern="mask")


def test_a_partial_pairing_is_refused_listing_the_files_and_the_option_that_pairs_them(tmp_path):
    images = [f"{i:02d}_training.png" for i in (21, 22, 23)]
    root = write_named(tmp_path, images, [f"{i:02d}_manual1.gif" for i in (21, 22, 23)])
    with pytest.raises(PairingError) as refused:
        folder(root)
    message = str(refused.value)
    assert (
        "3 images without a mask" in message and "21_training.png" in message and "23_manual1.gif" in message
    )
    assert message.endswith("""'data.mask_pattern="{id}_manual1"' pairs every file""")
    (root / "masks" / "23_manual1.gif").unlink()  # no rule pairs every file now: refused, none suggested
    with pytest.raises(PairingError, match="1 images without a mask .*: 23_training.png$"):
        folder(root, mask_pattern="{id}_manual1")


def test_an_ambiguous_pairing_is_refused(tmp_path):
    root = write_named(tmp_path, ["5_a.png", "5_b.png", "6_a.png"], ["5_m.png", "6_m.png", "7_m.png"])
    with pytest.raises(PairingError, match=r"ambiguous: 5_m.png matches 5_a.png, 5_b.png"):
        folder(root, mask_pattern="{id}_m")


def test_the_suggested_rules_pair_every_file():
    images = [Path("1_2.png"), Path("3_4.png")]
    assert suggest_patterns(images, [Path("1_2_mask.png"), Path("3_4_mask.png")]) == ["{stem}_mask"]
    assert suggest_patterns(images, [Path("mask_1_2.png"), Path("mask_3_4.png")]) == ["mask_{stem}"]
    assert suggest_patterns(images, [Path("lbl1.png"), Path("lbl3.png")]) == [r"(?P<id>\d+)"]
    assert suggest_patterns(images, [Path("1_2_mask.png"), Path("5_mask.png")]) == []


# --- manifests -------------------------------------------------------------------------------------
def write_files(root: Path, count: int) -> list[tuple[str, str]]:
    (root / "pics").mkdir(parents=True)
    (root / "anno").mkdir()
    rows = []
    for i in range(count):
        Image.fromarray(gray(i)).save(root / "pics" / f"p{i}.png")
        save_palette(labels(i), root / "anno" / f"a{i}.gif")
        rows.append((f"pics/p{i}.png", str(root / "anno" / f"a{i}.gif")))  # relative and absolute
    return rows


def test_a_csv_manifest_pairs_and_splits(tmp_path):
    rows = write_files(tmp_path / "d", 5)
    with (tmp_path / "d" / "list.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "mask", "split"])
        writer.writerows(
            [
                (image, mask, split)
                for (image, mask), split in zip(rows, ["train", "", "train", "val", "x"], strict=True)
            ]
        )
    with pytest.raises(DataError, match=r"row 6 has split 'x'; expected train, val, test"):
        folder(tmp_path / "d", manifest="list.csv")
    lines = (tmp_path / "d" / "list.csv").read_text().replace(",x\n", ",test\n")
    (tmp_path / "d" / "list.csv").write_text(lines)
    dm = folder(tmp_path / "d", manifest="list.csv")
    assert {split: [p.name for p in pairs] for split, pairs in dm.pairs.items()} == {
        "train": ["p0", "p1", "p2"],
        "val": ["p3"],
        "test": ["p4"],
    }
    dm.setup()
    assert np.array_equal(dm.dataset("val").source[0][1], labels(3))
    with pytest.raises(DataError, match="data.manifest lists every file: leave train_masks unset"):
        folder(tmp_path / "d", manifest="list.csv", train_masks="anno")


def test_a_json_lines_manifest_without_splits_is_carved_and_its_errors_name_the_row(tmp_path):
    rows = write_files(tmp_path, 4)
    manifest = tmp_path / "list.jsonl"
    manifest.write_text("".join(json.dumps({"image": i, "mask": m}) + "\n" for i, m in rows))
    dm = folder(tmp_path, manifest=str(manifest), val_fraction=0.25)
    assert len(dm.pairs["train"]) == 3 and len(dm.pairs["val"]) == 1
    manifest.write_text(
        manifest.read_text() + json.dumps({"image": "pics/none.png", "mask": rows[0][1]}) + "\n"
    )
    with pytest.raises(
        DataNotFoundError, match=r"list.jsonl row 5 lists image pics/none.png, which does not"
    ):
        folder(tmp_path, manifest=str(manifest))
    # Several files of one sample (one channel each) parse in order.
    manifest.write_text(json.dumps({"image": "pics/p0.png;pics/p1.png", "mask": rows[0][1]}) + "\n")
    (sample,) = read_manifest(manifest)["train"]
    assert sample.image == (tmp_path / "pics" / "p0.png", tmp_path / "pics" / "p1.png")


# --- the config and the commands -------------------------------------------------------------------
def test_the_folder_keys_are_accepted_without_a_plus(tmp_path):
    cfg = compose_config(
        "train",
        [
            "data=folder",
            f"data.root={tmp_path}",
            "data.train_masks=manual",
            "data.val_images=v/images",
            'data.mask_pattern="{id}_manual1"',
            "data.roi_dir=mask",
            "data.manifest=null",
        ],
    )
    assert cfg.data.train_masks == "manual" and cfg.data.mask_pattern == "{id}_manual1"
    assert cfg.data.train_images is None and cfg.data.roi_pattern is None


def test_check_data_names_the_pattern_and_the_format_and_training_with_it_works(
    tmp_path, monkeypatch, capsys
):
    """Slow: trains a tiny network for one epoch in the test process, after the check (a few seconds)."""
    ids = range(21, 25)
    write_named(tmp_path / "d", [f"{i}_training.png" for i in ids], [f"{i}_manual1.gif" for i in ids])
    common = [
        "data=folder", f"data.root={tmp_path / 'd'}", "data.in_channels=1", "data.num_workers=0",
        "data.batch_size=2", "data.val_fraction=0.25", "data.train_transforms=null", "data.epoch_size=null",
        "data.mean=[0.5]", "data.std=[0.25]",
    ]  # fmt: skip
    checked = run_in_process("unet-check-data", *common, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert (
        checked.returncode == 2
        and """'data.mask_pattern="{id}_manual1"' pairs every file""" in checked.stderr
    )
    option = 'data.mask_pattern="{id}_manual1"'
    checked = run_in_process(
        "unet-check-data", *common, option, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert checked.returncode == 0, checked.stderr
    assert "masks: GIF, palette mode (4 files)" in checked.stdout
    trained = run_in_process(
        "unet-train", *common, option, "model.net.base_channels=4", "model.net.depth=1", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "callbacks.progress_bar=null", "trainer.precision=32-true",
        "model.memory_format=contiguous", "model.net.norm=batch", "model.loss.class_weights=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


def test_palette_png_and_gif_masks_read_their_indices(tmp_path):
    indices = np.array([[0, 1, 2, 1]] * 4, dtype=np.uint8)
    colours = [0, 0, 0, 200, 10, 10, 10, 200, 10]  # colour-coded: the indices are the classes
    root = tmp_path / "d"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(gray(0)[:4, :4]).save(root / split / "images" / "a.png")
    save_palette(indices, root / "train" / "masks" / "a.gif", colours)
    save_palette(indices, root / "val" / "masks" / "a.png", colours)
    dm = folder(root, num_classes=3)
    dm.setup()
    for split in ("train", "val"):
        assert np.array_equal(dm.dataset(split).source[0][1], indices)
